"""``concurrency: N`` or ``timeoutMs``: the function is called on a pool of call threads.

A plain function that blocks on I/O runs on N threads at once (``concurrency: N``); a
function with ``timeoutMs`` runs on one call thread (or N), so the instance's own
thread can give up on a call that does not return in time.

Each call gets its own Context copy whose state calls go through a lock (the
write-behind state buffer is not thread-safe), so a batch's state changes still commit
together. The batch is settled once every call of it returned; outputs are published
in input order.

A call that has not returned within ``timeoutMs`` fails with a timeout error (a user
exception: the settlement nacks it, retries it and dead-letters it after
``maxMessageRetries``). Python cannot stop a thread, so the call is *abandoned*: the
pool it runs on is replaced by a fresh one (the rest of the batch and later batches run
there), its Context stops accepting state changes, and it is counted in
:attr:`ThreadedDispatcher.abandoned_calls`. Before abandoning, ``on_timeout`` is told
which input timed out: the process runtime uses it to replace the whole process
instead, which does stop the call (see :mod:`engine.instance.crashes`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from engine.instance.calls.common import CallResult, DispatchBase, call_context
from engine.instance.calls.pool import CallPool
from engine.instance.calls.timed import AbandonedCallError, refuse_state_changes

__all__ = ["AbandonedCallError", "LockedStateBuffer", "ThreadedDispatcher"]


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
    """Runs a blocking function over each batch on a pool of ``concurrency`` threads.

    Parameters
    ----------
    on_timeout
        Called with the input whose call ran past ``timeoutMs``, on the instance's
        thread, before the call is abandoned (it may end the process instead).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        pass_context: bool,
        concurrency: int,
        on_timeout: Callable[[Any], None] | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.function = function
        self.pass_context = pass_context
        self.concurrency = concurrency
        self.on_timeout = on_timeout
        self._pool = self._new_pool()
        state = getattr(self.context, "_state", None)
        self._locked = LockedStateBuffer(state) if state is not None else None
        #: Calls that ran past ``timeoutMs`` and were left to finish on their own.
        self.abandoned_calls = 0

    def _new_pool(self) -> CallPool:
        return CallPool(self.concurrency)

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

    def _abandon(self, ctx: Any) -> None:
        """Give up on the call running with ``ctx``: later calls run on a fresh pool."""
        self.abandoned_calls += 1
        if self._locked is not None:
            refuse_state_changes(ctx)
        old, self._pool = self._pool, self._new_pool()
        # Queued calls of the old pool are cancelled here and resubmitted by run(); the
        # abandoned thread ends when (if ever) its call returns.
        old.shutdown()

    def run(self, msgs: list[Any]) -> Any:
        """Process ``msgs``; returns the batch's outcome once every call returned (or timed out)."""
        outcome = self.hot.dispatch.BatchOutcome()
        decoded = self.decode(msgs, outcome)
        calls: list[tuple[int, Any, Any, Any, Future[tuple[Any, int]]]] = []
        for index, msg, value in decoded:
            ctx = self._context_for(msg)
            calls.append((index, msg, value, ctx, self._pool.submit(self._call, value, ctx)))
        # Futures complete about in submission order, so by the time one is waited for its
        # call has started: each call gets about timeoutMs of its own.
        wait = self.timeout_ms / 1000.0 if self.timeout_ms else None
        results: list[tuple[int, Any, CallResult]] = []
        for index, msg, value, ctx, future in calls:
            if future.cancelled():  # queued on a pool that was replaced: run it on the new one
                future = self._pool.submit(self._call, value, ctx)
            try:
                result, elapsed = future.result(wait)
            except FutureTimeout:
                if self.on_timeout is not None:
                    self.on_timeout(msg)
                self._abandon(ctx)
                results.append((index, msg, (False, self.timeout_text(), 0)))
                continue
            except Exception as exc:  # the function's own error fails this input
                results.append((index, msg, (False, self._format_error(exc), 0)))
                continue
            results.append((index, msg, (True, result, elapsed)))
        return self.finish(outcome, results)

    def close(self) -> None:
        """Stop the pool without waiting for abandoned calls."""
        self._pool.shutdown()
