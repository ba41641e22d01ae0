"""Which inputs of one partition have been applied, for EFFECTIVELY_ONCE.

A broker may deliver inputs again, and not always in order: after a consumer dies,
pulsar-lite hands its unacked inputs to the next consumer after newer ones. A single
"last position" would then skip inputs never applied. So a partition's progress is a
*mark* (every input at or before it is applied) plus the few applied inputs past the
mark that arrived out of order. The mark moves on while the next input is applied;
the next input is known exactly because a position carries its batch's size: entry
ids are dense within a ledger, and a new ledger starts at entry 0.

Progress is stored as text in the state store, committed in the same transaction as
the state changes it accounts for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_ABOVE", "PartitionProgress", "position_with_size"]

log = logging.getLogger(__name__)

#: An input position with its batch's size: ``(ledger, entry, batch index, batch size)``;
#: batch index -1 and size 0 for an input sent without batching.
Pos = tuple[int, int, int, int]

#: Out-of-order inputs kept past the mark before the mark is moved over a gap.
MAX_ABOVE = 100_000


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def position_with_size(msg: Any) -> Pos:
    """``(ledger, entry, batch index, batch size)`` of ``msg``, read from its serialized id."""
    mid = msg.message_id()
    data = mid.serialize()
    size = 0
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(data, i)
            if key >> 3 == 6:
                size = value
        elif wire == 2:
            length, i = _varint(data, i)
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            break
    batch = mid.batch_index()
    return (mid.ledger_id(), mid.entry_id(), batch, size if batch >= 0 else 0)


def _key(pos: Pos) -> tuple[int, int, int]:
    return pos[0], pos[1], pos[2]


@dataclass
class PartitionProgress:
    """The applied inputs of one partition: all up to ``mark``, and ``above`` it out of order."""

    mark: Pos | None = None
    above: dict[tuple[int, int, int], Pos] = field(default_factory=dict)

    def applied(self, pos: Pos) -> bool:
        """True if the input at ``pos`` was applied already."""
        key = _key(pos)
        return (self.mark is not None and key <= _key(self.mark)) or key in self.above

    def with_applied(self, positions: list[Pos]) -> PartitionProgress:
        """A copy that also counts ``positions`` as applied, with the mark moved on."""
        new = PartitionProgress(self.mark, dict(self.above))
        for pos in positions:
            if not new.applied(pos):
                new.above[_key(pos)] = pos
        if new.mark is None and new.above:
            first = min(new.above)
            new.mark = new.above.pop(first)
        new._advance()
        if len(new.above) > MAX_ABOVE:
            log.warning(
                "%d inputs past a gap were never delivered; moving the mark over the gap", len(new.above)
            )
            new.mark = new.above.pop(min(new.above))
            new._advance()
        return new

    def _advance(self) -> None:
        above = self.above
        while above and self.mark is not None:
            ledger, entry, batch, size = self.mark
            if 0 <= batch < size - 1:
                candidates = [(ledger, entry, batch + 1)]
            else:
                candidates = [(ledger, entry + 1, 0), (ledger, entry + 1, -1)]
                first = min(above)
                if first[0] > ledger and first[1] == 0 and first[2] <= 0:
                    candidates.append(first)  # the next ledger starts at entry 0
            nxt = next((c for c in candidates if c in above), None)
            if nxt is None:
                return
            self.mark = above.pop(nxt)

    def encode(self) -> str:
        """Text for the state store: ``mark|above,above`` with ``ledger:entry:batch:size`` each."""
        parts = [":".join(map(str, self.mark)) if self.mark else ""]
        parts.append(",".join(":".join(map(str, p)) for p in sorted(self.above.values())))
        return "|".join(parts)

    @classmethod
    def decode(cls, text: str) -> PartitionProgress:
        """The inverse of :meth:`encode`."""
        mark_text, _, above_text = text.partition("|")

        def pos(t: str) -> Pos:
            a, b, c, d = (int(x) for x in t.split(":"))
            return (a, b, c, d)

        above = {_key(p): p for p in (pos(t) for t in above_text.split(",") if t)}
        return cls(pos(mark_text) if mark_text else None, above)
