"""How late the event loop wakes: a probe task that operators and tests can read.

The probe sleeps ``interval`` seconds at a time and records how much later than asked
it woke. Anything that blocks the loop (a blocking call, a long computation) shows up
as lag; a healthy loop stays within a few milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["LoopLagProbe"]


class LoopLagProbe:
    """Measures the lateness of the running loop's wake-ups.

    Parameters
    ----------
    interval
        Seconds between wake-ups.
    window
        Seconds over which :attr:`recent_max_ms` looks back.
    """

    def __init__(self, interval: float = 0.02, window: float = 5.0) -> None:
        self.interval = interval
        self.window = window
        #: Largest lag seen since the probe started, in ms.
        self.max_ms = 0.0
        #: Lag of the latest wake-up, in ms.
        self.last_ms = 0.0
        #: Wake-ups measured so far.
        self.samples = 0
        self._recent: deque[tuple[float, float]] = deque()

    @property
    def recent_max_ms(self) -> float:
        """Largest lag of the last ``window`` seconds, in ms."""
        self._forget(time.monotonic())
        return max((lag for _, lag in self._recent), default=0.0)

    def recent(self) -> list[float]:
        """Lags of the last ``window`` seconds, oldest first, in ms."""
        self._forget(time.monotonic())
        return [lag for _, lag in self._recent]

    def record(self, lag_ms: float, now: float) -> None:
        """Record one measurement taken at ``now`` (monotonic seconds)."""
        self.samples += 1
        self.last_ms = lag_ms
        self.max_ms = max(self.max_ms, lag_ms)
        self._recent.append((now, lag_ms))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._recent and now - self._recent[0][0] > self.window:
            self._recent.popleft()

    async def run(self) -> None:
        """Measure until cancelled (run it as a supervised task)."""
        while True:
            asked = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.record(max(0.0, (now - asked) * 1000.0), now)
