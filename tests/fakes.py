"""In-memory stand-ins for client messages and producers, for unit tests of pure logic.

Integration tests use the real broker; these only feed the hot path deterministic
batches so both twins can be compared exactly.
"""

from __future__ import annotations

from typing import Any


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class FakeMessageId:
    def __init__(self, ledger: int, entry: int, batch: int = -1, partition: int = -1) -> None:
        self._l, self._e, self._b, self._p = ledger, entry, batch, partition

    def ledger_id(self) -> int:
        return self._l

    def entry_id(self) -> int:
        return self._e

    def batch_index(self) -> int:
        return self._b

    def partition(self) -> int:
        return self._p

    def __lt__(self, other: FakeMessageId) -> bool:
        return (self._l, self._e, self._b) < (other._l, other._e, other._b)

    def serialize(self) -> bytes:
        """The broker's MessageIdData encoding: ledgerId=1, entryId=2, partition=3, batch_index=4."""
        out = bytearray()
        for number, value in ((1, self._l), (2, self._e), (3, self._p), (4, self._b)):
            out += _varint((number << 3) | 0) + _varint(value & 0xFFFFFFFFFFFFFFFF)
        return bytes(out)


class FakeMessage:
    def __init__(
        self,
        data: bytes,
        topic: str = "persistent://public/default/in",
        ledger: int = 0,
        entry: int = 0,
        batch: int = -1,
        key: str = "",
        properties: dict[str, str] | None = None,
        redelivery: int = 0,
    ) -> None:
        self._data = data
        self._topic = topic
        self._id = FakeMessageId(ledger, entry, batch)
        self._key = key
        self._props = properties or {}
        self._redelivery = redelivery

    def data(self) -> bytes:
        return self._data

    def topic_name(self) -> str:
        return self._topic

    def message_id(self) -> FakeMessageId:
        return self._id

    def partition_key(self) -> str:
        return self._key

    def ordering_key(self) -> bytes:
        return b""

    def properties(self) -> dict[str, str]:
        return dict(self._props)

    def redelivery_count(self) -> int:
        return self._redelivery

    def event_timestamp(self) -> int:
        return 0


class FakeBuilder:
    """Mimics the client's MessageBuilder: records what was set."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {"properties": {}}

    def content(self, data: bytes) -> FakeBuilder:
        self.fields["content"] = data
        return self

    def partition_key(self, key: str) -> FakeBuilder:
        self.fields["key"] = key
        return self

    def property(self, name: str, value: str) -> FakeBuilder:
        self.fields["properties"][name] = value
        return self

    def build(self) -> dict[str, Any]:
        return self.fields


class FakeProducer:
    def __init__(self, fail_on: bytes | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_on = fail_on

    def send_async(self, message: dict[str, Any], callback: Any) -> None:
        if self.fail_on is not None and message["content"] == self.fail_on:
            raise RuntimeError("producer rejected the message")
        self.sent.append(message)


class FakeConsumer:
    def __init__(self) -> None:
        self.acked: list[Any] = []
        self.nacked: list[Any] = []

    def acknowledge(self, msg: Any) -> None:
        self.acked.append(msg)

    def negative_acknowledge(self, msg: Any) -> None:
        self.nacked.append(msg)
