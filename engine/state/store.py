"""The state-store interface shared by every backend."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Position", "PositionUpdate", "StateConflict", "StateStore", "StateStoreError"]

#: A message position in a topic partition: ``(ledger, entry, batch index)``.
Position = tuple[int, int, int]

#: A position move for one partition: ``(expected current position or None, new position)``.
PositionUpdate = tuple["Position | None", Position]


class StateStoreError(Exception):
    """The store could not read or commit; the batch that needed it must be retried."""


class StateConflict(StateStoreError):
    """A committed input position is not the one expected: another instance moved it on."""


class StateStore(Protocol):
    """Counters (64-bit), byte values and input positions per function (``tenant/namespace/name``).

    Implementations must be safe to call from several instance threads at once.
    """

    def get_counter(self, namespace: str, key: str) -> int | None:
        """The counter's value, or ``None`` when it does not exist."""

    def get_value(self, namespace: str, key: str) -> bytes | None:
        """The stored value, or ``None`` when it does not exist."""

    def get_positions(self, namespace: str) -> dict[str, Position]:
        """The last committed input position of every partition (``topic name -> position``)."""

    def commit(
        self,
        namespace: str,
        deltas: dict[str, int],
        resets: set[str],
        values: dict[str, bytes | None],
        positions: dict[str, PositionUpdate] | None = None,
    ) -> None:
        """Apply one batch atomically: drop ``resets`` counters, add ``deltas``, write ``values``.

        With ``positions``, also move each partition's committed input position from the
        expected one to the new one, in the same transaction; if any partition's stored
        position is not the expected one, nothing is applied and :class:`StateConflict`
        is raised.
        """

    def close(self) -> None:
        """Release connections."""
