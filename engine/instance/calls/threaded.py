"""``concurrency: N``: a plain function that blocks on I/O, called on N threads at once.

Each call gets its own Context copy whose state calls go through a lock (the
write-behind state buffer is not thread-safe), so a batch's state changes still commit
together. The batch is settled once every call of it returned; outputs are published
in input order. With ``timeoutMs`` a call that has not returned in time fails with a
timeout error; Python cannot stop a thread, so the call is abandoned (its thread keeps
its slot until the call returns) and counted in ``abandoned_calls``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from engine.instance.calls.common import CallResult, DispatchBase, call_context

__all__ = ["LockedStateBuffer", "ThreadedDispatcher"]


class LockedStateBuffer:
    """The state buffer's calls, one thread at a time."""

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer
        self._lock = threading.Lock()

    def incr(self, key: str, amount: int) -> None:
        with self._lock:
            self._buffer.incr(key, amount)

    def delete_counter(self, key: str) -> None:
        with self._lock:
            self._buffer.delete_counter(key)

    def counter_delta(self, key: str) -> tuple[int, bool]:
        with self._lock:
            return self._buffer.counter_delta(key)

    def put(self, key: str, value: bytes | None) -> None:
        with self._lock:
            self._buffer.put(key, value)

    def pending_value(self, key: str) -> Any:
        with self._lock:
            return self._buffer.pending_value(key)


class ThreadedDispatcher(DispatchBase):
    """Runs a blocking function over each batch on a pool of ``concurrency`` threads."""

    def __init__(
        self, function: Callable[..., Any], pass_context: bool, concurrency: int, **common: Any
    ) -> None:
        super().__init__(**common)
        self.function = function
        self.pass_context = pass_context
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="call")
        state = getattr(self.context, "_state", None)
        self._locked = LockedStateBuffer(state) if state is not None else None
        #: Calls that ran past ``timeoutMs`` and were left to finish on their own.
        self.abandoned_calls = 0

    def _context_for(self, msg: Any) -> Any:
        ctx = call_context(self.context, msg)
        if self._locked is not None:
            ctx._state = self._locked
            if "incr_counter" in vars(self.context):  # bound to the buffer for speed: rebind
                ctx.incr_counter = self._locked.incr
        return ctx

    def _call(self, value: Any, ctx: Any) -> tuple[Any, int]:
        start = time.perf_counter_ns()
        result = self.function(value, ctx) if self.pass_context else self.function(value)
        return result, time.perf_counter_ns() - start

    def run(self, msgs: list[Any]) -> Any:
        """Process ``msgs``; returns the batch's outcome once every call returned (or timed out)."""
        outcome = self.hot.dispatch.BatchOutcome()
        decoded = self.decode(msgs, outcome)
        futures: list[tuple[int, Any, Future[tuple[Any, int]]]] = [
            (index, msg, self._pool.submit(self._call, value, self._context_for(msg)))
            for index, msg, value in decoded
        ]
        # Futures complete about in submission order, so by the time one is waited for its
        # call has started: each call gets about timeoutMs of its own.
        wait = self.timeout_ms / 1000.0 if self.timeout_ms else None
        results: list[tuple[int, Any, CallResult]] = []
        for index, msg, future in futures:
            try:
                result, elapsed = future.result(wait)
            except FutureTimeout:
                self.abandoned_calls += 1
                results.append((index, msg, (False, self.timeout_text(), 0)))
                continue
            except Exception as exc:  # the function's own error fails this input
                results.append((index, msg, (False, self._format_error(exc), 0)))
                continue
            results.append((index, msg, (True, result, elapsed)))
        return self.finish(outcome, results)

    def close(self) -> None:
        """Stop the pool without waiting for abandoned calls."""
        self._pool.shutdown(wait=False, cancel_futures=True)
