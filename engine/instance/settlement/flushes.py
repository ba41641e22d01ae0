"""Inputs parked until the outputs they depend on are persisted.

A batch's outputs are queued without per-message callbacks; one ``flush_async`` per
producer the batch used reports them persisted (a producer persists in order). The
inputs of the batch wait here under a token until every flush of it reported; then
they are acknowledged (all flushes succeeded) or negatively acknowledged.

Completions arrive on the client's thread and are only appended to a deque; the
instance thread applies them in :meth:`FlushTracker.drain`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from engine.hotpath import HotPath
from engine.instance.producers import ProducerPool

__all__ = ["FlushTracker"]

#: ``on_settled(messages, ok)``: called on the instance thread when a parked batch settles.
OnSettled = Callable[[list[Any], bool], None]


class FlushTracker:
    """Tokens of parked input batches and the flushes each still waits for."""

    def __init__(self, hot: HotPath, producers: ProducerPool, stats: Any, on_settled: OnSettled) -> None:
        self._pool = producers
        self._stats = stats
        self._on_settled = on_settled
        self._pending = hot.acks.PendingAcks()
        self._waiting: dict[int, list[Any]] = {}  # token -> [flushes left, all ok]
        self._completions: deque[tuple[int, bool]] = deque()
        self._arrived = threading.Event()

    @property
    def busy(self) -> bool:
        """True while some parked batch waits for its flushes."""
        return bool(self._waiting)

    def in_flight(self) -> list[Any]:
        """The parked inputs still waiting for their flushes (in no particular order)."""
        held: list[Any] = []
        for token in self._waiting:
            held.extend(self._pending.peek(token))
        return held

    def flush(self, consumer: Any, parked: list[Any] | None) -> None:
        """Flush the producers used since the last flush; settle ``parked`` once all report."""
        count = self._pool.touched_count()
        if count == 0:
            if parked:
                self._pending.complete(self._pending.add(consumer, parked), True)
            return
        token = -1
        if parked:
            token = self._pending.add(consumer, parked)
            self._waiting[token] = [count, True]
        self._pool.flush_touched(self._completion(token))

    def _completion(self, token: int) -> Callable[[bool], None]:
        completions, arrived = self._completions, self._arrived

        def done(ok: bool) -> None:  # client thread: hand over only
            completions.append((token, ok))
            arrived.set()

        return done

    def wait(self, timeout: float) -> None:
        """Block until a completion arrives or ``timeout`` seconds pass (shutdown)."""
        self._arrived.wait(timeout)
        self._arrived.clear()

    def flush_topic(self, consumer: Any, topic: str, parked: list[Any]) -> None:
        """Flush the producer of ``topic`` alone and settle ``parked`` once it reports."""
        token = self._pending.add(consumer, parked)
        self._waiting[token] = [1, True]
        self._pool.flush_one(topic, self._completion(token))

    def drain(self) -> None:
        """Apply the completions that arrived: ack or nack every batch whose flushes all reported."""
        completions = self._completions
        waiting = self._waiting
        while completions:
            token, ok = completions.popleft()
            state = waiting.get(token) if token >= 0 else None
            if state is None:
                continue
            state[0] -= 1
            state[1] = state[1] and ok
            if state[0] == 0:
                del waiting[token]
                if not state[1]:
                    self._stats.add_system_exception("publishing outputs failed; inputs will be redelivered")
                self._on_settled(self._pending.peek(token), state[1])
                self._pending.complete(token, state[1])

    def drain_until(self, deadline: float) -> None:
        """Apply completions until nothing is parked or ``deadline`` (monotonic) passes (shutdown)."""
        while self.busy and time.monotonic() < deadline:
            self.drain()
            self.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        self.drain()

    def flush_and_wait(self, timeout: float = 60.0) -> bool:
        """Flush the producers used since the last flush and wait; true if all persisted."""
        count = self._pool.touched_count()
        if count == 0:
            return True
        results: list[bool] = []
        done = threading.Event()

        def on_flushed(ok: bool) -> None:  # client thread: hand over only
            results.append(ok)
            if len(results) == count:
                done.set()

        self._pool.flush_touched(on_flushed)
        return done.wait(timeout) and all(results)
