"""A user SerDe for the integration tests."""

from __future__ import annotations

from pulsar.functions.serde import SerDe


class ReversingSerDe(SerDe):  # type: ignore[misc]
    def serialize(self, input: str) -> bytes:
        return input[::-1].encode()

    def deserialize(self, input_bytes: bytes) -> str:
        return input_bytes.decode()[::-1]
