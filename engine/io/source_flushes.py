"""A source's records parked until the flushes of their batch report.

A source's batch (what one ``Source.read`` returned) is queued with no per-message
callback; then one ``flush_async`` per producer the batch used reports it persisted
(a producer persists in order, so a flush that reports covers every message queued
before it). The batch's records wait here under a token until each of those flushes
reported; then all of them are settled together: persisted when every flush
succeeded, failed otherwise. A failed flush therefore fails the records of its own
batch and of no other.

Completions arrive on the client's threads and are only appended to a deque; the
source's thread applies them in :meth:`SourceFlushes.drain`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from engine.instance.producers import ProducerPool

__all__ = ["SourceFlushes"]

_FLUSH_FAILED = "publishing failed: the batch's flush failed"

#: ``on_settled(records, error)``: called on the source's thread; ``error`` is ``None`` when persisted.
OnSettled = Callable[[list[Any], "str | None"], None]


class SourceFlushes:
    """Tokens of the batches in flight and the flushes each still waits for."""

    def __init__(self, producers: ProducerPool, on_settled: OnSettled) -> None:
        self._pool = producers
        self._on_settled = on_settled
        self._next = 0
        #: token -> [flushes left, all ok, records]
        self._waiting: dict[int, list[Any]] = {}
        self._completions: deque[tuple[int, bool]] = deque()
        self._arrived = threading.Event()

    @property
    def busy(self) -> bool:
        """True while some batch waits for its flushes."""
        return bool(self._waiting)

    def flush(self, records: list[Any]) -> None:
        """Flush the producers used since the last flush; settle ``records`` once all report.

        Producers touched by a batch whose ``records`` is empty (ATMOST_ONCE: settled
        when queued) are flushed too, so their messages leave without waiting for the
        client's batching delay.
        """
        count = self._pool.touched_count()
        if count == 0:
            if records:
                self._on_settled(records, None)
            return
        token = -1
        if records:
            token = self._next
            self._next += 1
            self._waiting[token] = [count, True, records]
        self._pool.flush_touched(self._completion(token))

    def _completion(self, token: int) -> Callable[[bool], None]:
        completions, arrived = self._completions, self._arrived

        def done(ok: bool) -> None:  # client thread: hand over only
            completions.append((token, ok))
            arrived.set()

        return done

    def wait(self, timeout: float) -> None:
        """Block until a completion arrives or ``timeout`` seconds pass."""
        self._arrived.wait(timeout)
        self._arrived.clear()

    def drain(self) -> None:
        """Settle every batch whose flushes all reported."""
        completions = self._completions
        waiting = self._waiting
        while completions:
            token, ok = completions.popleft()
            state = waiting.get(token)
            if state is None:
                continue
            state[0] -= 1
            state[1] = state[1] and ok
            if state[0] == 0:
                del waiting[token]
                self._on_settled(state[2], None if state[1] else _FLUSH_FAILED)

    def drain_until(self, deadline: float) -> None:
        """Settle batches as their flushes report, until none waits or ``deadline`` (monotonic) passes."""
        while self.busy and time.monotonic() < deadline:
            self.drain()
            self.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        self.drain()

    def fail_waiting(self, reason: str) -> None:
        """Fail every batch still waiting (the instance stops before its flushes reported)."""
        self.drain()
        waiting, self._waiting = self._waiting, {}
        for state in waiting.values():
            self._on_settled(state[2], reason)
