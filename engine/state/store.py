"""The state-store interface shared by every backend."""

from __future__ import annotations

from typing import Protocol

__all__ = ["ProgressUpdate", "StateConflict", "StateStore", "StateStoreError"]

#: A move of one partition's input progress (an opaque text the instance encodes):
#: ``(expected current progress or None when there is none yet, new progress)``.
ProgressUpdate = tuple["str | None", str]


class StateStoreError(Exception):
    """The store could not read or commit; the batch that needed it must be retried."""


class StateConflict(StateStoreError):
    """A committed input position is not the one expected: another instance moved it on."""


class StateStore(Protocol):
    """Counters (64-bit), byte values and input positions per function (``tenant/namespace/name``).

    Counters and values share one key space: writing a value to a key drops its counter
    and changing a counter drops the key's value, so a read always answers the last write.
    Implementations must be safe to call from several instance threads at once.
    """

    def get_counter(self, namespace: str, key: str) -> int | None:
        """The counter's value, or ``None`` when it does not exist."""

    def get_value(self, namespace: str, key: str) -> bytes | None:
        """The stored value, or ``None`` when it does not exist."""

    def get_positions(self, namespace: str) -> dict[str, str]:
        """The committed input progress of every partition (``topic name -> progress``)."""

    def commit(
        self,
        namespace: str,
        deltas: dict[str, int],
        resets: set[str],
        values: dict[str, bytes | None],
        positions: dict[str, ProgressUpdate] | None = None,
    ) -> None:
        """Apply one batch atomically: drop ``resets`` counters, add ``deltas``, write ``values``.

        With ``positions``, also move each partition's committed input progress from the
        expected one to the new one, in the same transaction; if any partition's stored
        progress is not the expected one, nothing is applied and :class:`StateConflict`
        is raised.
        """

    def delete_namespace(self, namespace: str) -> None:
        """Remove every counter, value and input position of ``namespace`` (its function was deleted)."""

    def close(self) -> None:
        """Release connections."""
