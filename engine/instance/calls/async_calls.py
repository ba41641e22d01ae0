"""``async def process``: many calls of one batch in flight on the instance's own event loop.

The loop (uvloop where installed) belongs to the instance thread: a batch's calls run
on it concurrently, at most ``maxPendingAsyncRequests`` at once, each with its own
Context copy (so ``get_message_id()`` and friends answer for that call's input) and,
with ``timeoutMs``, cancelled when they run longer. The batch is settled once every
call of it completed, and its outputs are published in input order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from engine.instance.calls.common import CallResult, DispatchBase, call_context

__all__ = ["AsyncDispatcher"]


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is not built for every platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class AsyncDispatcher(DispatchBase):
    """Runs a coroutine function over each batch with bounded concurrency."""

    def __init__(
        self, function: Callable[..., Any], pass_context: bool, max_pending: int, **common: Any
    ) -> None:
        super().__init__(**common)
        self.function = function
        self.pass_context = pass_context
        self.max_pending = max_pending
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, msgs: list[Any]) -> Any:
        """Process ``msgs``; returns the batch's outcome once every call completed."""
        outcome = self.hot.dispatch.BatchOutcome()
        decoded = self.decode(msgs, outcome)
        if self._loop is None:
            self._loop = _new_loop()
        results = self._loop.run_until_complete(self._calls(decoded))
        return self.finish(outcome, results)

    async def _calls(self, decoded: list[tuple[int, Any, Any]]) -> list[tuple[int, Any, CallResult]]:
        gate = asyncio.Semaphore(self.max_pending)
        timeout = self.timeout_ms / 1000.0 if self.timeout_ms else None

        async def one(index: int, msg: Any, value: Any) -> tuple[int, Any, CallResult]:
            async with gate:
                ctx = call_context(self.context, msg)
                start = time.perf_counter_ns()
                try:
                    call = self.function(value, ctx) if self.pass_context else self.function(value)
                    result = await asyncio.wait_for(call, timeout)
                except asyncio.TimeoutError:
                    return index, msg, (False, self.timeout_text(), 0)
                except Exception as exc:  # the function's own error fails this input
                    return index, msg, (False, self._format_error(exc), 0)
                return index, msg, (True, result, time.perf_counter_ns() - start)

        return list(await asyncio.gather(*(one(i, m, v) for i, m, v in decoded)))

    def close(self) -> None:
        """Close the event loop (on the instance thread, at shutdown)."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None
