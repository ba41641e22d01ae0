"""The state-store interface shared by every backend."""

from __future__ import annotations

from typing import Protocol

__all__ = ["StateStore", "StateStoreError"]


class StateStoreError(Exception):
    """The store could not read or commit; the batch that needed it must be retried."""


class StateStore(Protocol):
    """Counters (64-bit) and byte values per function namespace (``tenant/namespace/name``).

    Implementations must be safe to call from several instance threads at once.
    """

    def get_counter(self, namespace: str, key: str) -> int | None:
        """The counter's value, or ``None`` when it does not exist."""

    def get_value(self, namespace: str, key: str) -> bytes | None:
        """The stored value, or ``None`` when it does not exist."""

    def commit(
        self,
        namespace: str,
        deltas: dict[str, int],
        resets: set[str],
        values: dict[str, bytes | None],
    ) -> None:
        """Apply one batch atomically: drop ``resets`` counters, add ``deltas``, write ``values``."""

    def close(self) -> None:
        """Release connections."""
