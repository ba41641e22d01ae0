"""Which inputs form which window, and when an input leaves every window (pure logic).

Inputs arrive with a timestamp (processing time, or event time from a timestamp
extractor) and are kept in arrival order. A window fires by count (every
``slide_count`` inputs) or by time (when the clock, the wall clock or the watermark,
passes a window end; ends are multiples of ``slide_ms``). Its content is the last
``length_count`` inputs, or the inputs with ``end - length_ms < ts <= end``. After a
window fires, the inputs that no later window can contain are *expired*: the
settlement acknowledges them then (as Apache's window executor acks events when they
expire), so a crash redelivers every input some window still needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.config.windows import WindowSpec

__all__ = ["Fired", "WindowBuffer"]


@dataclass
class Fired:
    """One window that fired: its bounds (ms), its inputs, and the inputs it expired."""

    start: int
    end: int
    items: list[Any] = field(default_factory=list)
    expired: list[Any] = field(default_factory=list)


class WindowBuffer:
    """Buffered ``(timestamp, item)`` pairs of one instance and the windows they form."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self._ts: list[int] = []
        self._items: list[Any] = []
        self._since = 0
        self._next_end: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Forget every buffered input (they will all be delivered again)."""
        self._ts.clear()
        self._items.clear()
        self._since = 0
        self._next_end = None

    # -- input -----------------------------------------------------------------------------------
    def add(self, ts: int, item: Any) -> list[Fired]:
        """Buffer one input; the count windows it completes."""
        spec = self.spec
        self._ts.append(ts)
        self._items.append(item)
        if spec.slide_count is None:
            if self._next_end is None:
                self._next_end = -(-ts // spec.slide_ms) * spec.slide_ms  # type: ignore[operator]
            return []
        self._since += 1
        if self._since < spec.slide_count:
            return []
        self._since = 0
        return [self._fire_count(ts)]

    def add_many(self, pairs: list[tuple[int, Any]]) -> list[Fired]:
        """Buffer inputs in order; the count windows they complete (a fast path for count windows)."""
        spec = self.spec
        if spec.slide_count is None or spec.length_count is None:
            fired: list[Fired] = []
            for ts, item in pairs:
                fired.extend(self.add(ts, item))
            return fired
        fired = []
        i = 0
        while i < len(pairs):
            take = min(spec.slide_count - self._since, len(pairs) - i)
            chunk = pairs[i : i + take]
            self._ts.extend(ts for ts, _ in chunk)
            self._items.extend(item for _, item in chunk)
            self._since += take
            i += take
            if self._since == spec.slide_count:
                self._since = 0
                fired.append(self._fire_count(self._ts[-1]))
        return fired

    def advance(self, clock: int) -> list[Fired]:
        """Move the clock (wall time or watermark, ms); the time windows that end by then."""
        spec = self.spec
        if spec.slide_ms is None or self._next_end is None:
            return []
        fired = []
        while clock >= self._next_end:
            end = self._next_end
            self._next_end = end + spec.slide_ms
            window = self._fire_time(end)
            if window.items or window.expired:
                fired.append(window)
            if not self._items:
                self._next_end = None  # nothing buffered: the next input starts the next end
                break
        return fired

    # -- firing ------------------------------------------------------------------------------------
    def _fire_count(self, last_ts: int) -> Fired:
        spec = self.spec
        if spec.length_count is not None:
            n = spec.length_count
            content = self._items[-n:]
            start = self._ts[-len(content)] if content else last_ts
            keep = max(0, n - spec.slide_count) if spec.slide_count is not None else n
        else:
            low = last_ts - spec.length_ms  # type: ignore[operator]
            first = next((i for i, t in enumerate(self._ts) if t > low), len(self._ts))
            content = self._items[first:]
            start = low
            keep = len(self._items) - first
        cut = len(self._items) - keep
        expired = self._items[:cut]
        del self._items[:cut]
        del self._ts[:cut]
        return Fired(start, last_ts, list(content), expired)

    def _fire_time(self, end: int) -> Fired:
        spec = self.spec
        ts, items = self._ts, self._items
        if spec.length_ms is not None:
            low = end - spec.length_ms
            content = [item for t, item in zip(ts, items, strict=True) if low < t <= end]
            horizon = end + spec.slide_ms - spec.length_ms  # type: ignore[operator]
            gone = [t <= horizon for t in ts]
            start = low
        else:
            n = spec.length_count or 0
            upto = [i for i, t in enumerate(ts) if t <= end]
            chosen = upto[-n:]
            content = [items[i] for i in chosen]
            start = ts[chosen[0]] if chosen else end
            old = set(upto[:-n]) if n else set(upto)
            gone = [i in old for i in range(len(ts))]
        expired = [item for item, g in zip(items, gone, strict=True) if g]
        self._ts = [t for t, g in zip(ts, gone, strict=True) if not g]
        self._items = [item for item, g in zip(items, gone, strict=True) if not g]
        return Fired(start, end, content, expired)
