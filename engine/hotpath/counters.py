"""Write-behind buffer for function state (pure-Python twin of ``ext/counters.pyx``).

``Context.incr_counter`` and friends land here instead of in the state store; the
instance loop drains the buffer once per batch and commits it to the store in one
transaction *before* any input of the batch is acknowledged. Reads go through
:meth:`StateBuffer.counter_delta` / :meth:`StateBuffer.pending_value` so that a
function always sees its own writes.
"""

from __future__ import annotations

from engine.hotpath import protocols

__all__ = ["MISSING", "StateBuffer"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: Returned by :meth:`StateBuffer.pending_value` when the buffer knows nothing of a key.
MISSING = _Missing()


class StateBuffer(protocols.StateBuffer):
    """Pending state changes of one batch: counter deltas, counter resets, value writes."""

    __slots__ = ("deltas", "resets", "values")

    def __init__(self) -> None:
        self.deltas: dict[str, int] = {}
        self.resets: set[str] = set()
        self.values: dict[str, bytes | None] = {}

    def incr(self, key: str, amount: int) -> None:
        """Add ``amount`` (a 64-bit integer) to counter ``key``."""
        amount = int(amount)
        if not -(2**63) <= amount < 2**63:
            raise OverflowError(f"counter amount {amount} does not fit in 64 bits")
        self.deltas[key] = self.deltas.get(key, 0) + amount

    def delete_counter(self, key: str) -> None:
        """Forget counter ``key``: the store drops it and pending deltas are discarded."""
        self.deltas.pop(key, None)
        self.resets.add(key)

    def counter_delta(self, key: str) -> tuple[int, bool]:
        """``(pending delta, reset)``; with ``reset`` the stored value no longer counts."""
        return self.deltas.get(key, 0), key in self.resets

    def put(self, key: str, value: bytes | None) -> None:
        """Write (or, with ``None``, delete) the value ``key``."""
        self.values[key] = value

    def pending_value(self, key: str) -> bytes | _Missing | None:
        """The value written in this batch, ``None`` if deleted, else ``MISSING``."""
        return self.values.get(key, MISSING)

    def is_empty(self) -> bool:
        """True when there is nothing to commit."""
        return not (self.deltas or self.resets or self.values)

    def drain(self) -> tuple[dict[str, int], set[str], dict[str, bytes | None]]:
        """Hand over ``(deltas, resets, values)`` and start an empty buffer."""
        out = (self.deltas, self.resets, self.values)
        self.deltas = {}
        self.resets = set()
        self.values = {}
        return out
