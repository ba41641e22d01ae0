"""``async def process``: many calls of one batch in flight on the instance's own event loop.

The loop (uvloop where installed) belongs to the instance thread and lives as long as
the dispatcher. A batch runs on ``min(len(batch), maxPendingAsyncRequests)`` call
slots: each slot is one task that takes the batch's next input as soon as its previous
call completed, so at most ``maxPendingAsyncRequests`` calls are in flight and no call
waits behind a slower one (there is no semaphore and no task per input beyond the
slots). Each call gets its own Context copy (so ``get_message_id()`` and friends answer
for that call's input) and, with ``timeoutMs``, is cancelled when it runs longer. The
batch is settled once every call of it completed, and its outputs are published in
input order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from engine.instance.calls.common import CallResult, DispatchBase, call_context

if TYPE_CHECKING:
    from engine.config.validation import FunctionSpec
    from engine.function.loader import LoadedFunction

__all__ = ["CALLS_PER_SLOT", "MAX_ASYNC_BATCH", "AsyncDispatcher", "async_batch_size", "input_batch_size"]

#: An async function's inputs are received in batches of at least this many calls per slot.
CALLS_PER_SLOT = 4
#: ... but of at most this many inputs (unless ``batch_max_messages`` asks for more).
MAX_ASYNC_BATCH = 10_000


def async_batch_size(batch_max_messages: int, max_pending: int) -> int:
    """How many inputs an async function receives per batch.

    A batch ends with its last calls in flight and the slots that finished idle, until
    the next batch is received: with ``CALLS_PER_SLOT`` calls per slot in a batch that
    tail is a quarter of the batch's time instead of half (measured: 500 in flight of a
    5 ms call, 1,000 inputs a batch against 2,000, about a quarter more inputs per
    second). ``batch_max_messages`` stays the floor.
    """
    return max(batch_max_messages, min(CALLS_PER_SLOT * max_pending, MAX_ASYNC_BATCH))


def input_batch_size(batch_max_messages: int, function: LoadedFunction | None, spec: FunctionSpec) -> int:
    """How many inputs an instance receives per batch for ``function``'s call mode.

    A plain ``async def process`` (no ``process_batch``, no window) takes
    :func:`async_batch_size`; every other mode, and an instance that runs no function
    (``None``: a sink's), takes ``batch_max_messages``.
    """
    if function is None or not function.is_async or function.process_batch is not None:
        return batch_max_messages
    if spec.window is not None:
        return batch_max_messages
    return async_batch_size(batch_max_messages, spec.max_pending_async_requests)


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
        if not decoded:
            return outcome
        if self._loop is None:
            self._loop = _new_loop()
        results = self._loop.run_until_complete(self._calls(decoded))
        return self.finish(outcome, results)

    async def _calls(self, decoded: list[tuple[int, Any, Any]]) -> list[tuple[int, Any, CallResult]]:
        results: list[Any] = [None] * len(decoded)
        todo = iter(enumerate(decoded))
        slot = self._slot if self.timeout_ms else self._untimed_slot
        slots = min(len(decoded), self.max_pending)
        if slots == 1:
            await slot(todo, results)
        else:
            await asyncio.gather(*[slot(todo, results) for _ in range(slots)])
        return results

    async def _untimed_slot(
        self, todo: Iterator[tuple[int, tuple[int, Any, Any]]], results: list[Any]
    ) -> None:
        """One call slot without ``timeoutMs``: calls the inputs it takes from ``todo``, one at a time."""
        function, pass_context, context = self.function, self.pass_context, self.context
        clock = time.perf_counter_ns
        for position, (index, msg, value) in todo:
            start = clock()
            try:
                if pass_context:
                    result = await function(value, call_context(context, msg))
                else:
                    result = await function(value)
            except Exception as exc:  # the function's own error fails this input
                results[position] = (index, msg, (False, self._format_error(exc), 0))
                continue
            results[position] = (index, msg, (True, result, clock() - start))

    async def _slot(self, todo: Iterator[tuple[int, tuple[int, Any, Any]]], results: list[Any]) -> None:
        """One call slot with ``timeoutMs``: a call still running then is cancelled and fails.

        One timer per call cancels the slot's own task (no task per call, as
        ``asyncio.wait_for`` would start); a call that fails once cancelled by it fails as
        timed out, one that swallows the cancellation keeps its result. A cancellation that
        did not come from the timer ends the slot, as it would any awaiting task.
        """
        function, pass_context, context = self.function, self.pass_context, self.context
        clock = time.perf_counter_ns
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # a slot always runs as a task
        timer = _CallTimer(task)
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: cancellation requests are counted
        seconds = self.timeout_ms / 1000.0
        for position, (index, msg, value) in todo:
            timer.fired = False
            start = clock()
            handle = loop.call_later(seconds, timer)
            try:
                if pass_context:
                    result = await function(value, call_context(context, msg))
                else:
                    result = await function(value)
            except asyncio.CancelledError:
                if not timer.fired:
                    raise
                results[position] = (index, msg, (False, self.timeout_text(), 0))
                continue
            except Exception as exc:  # the function's own error (its own TimeoutError too)
                text = self.timeout_text() if timer.fired else self._format_error(exc)
                results[position] = (index, msg, (False, text, 0))
                continue
            finally:
                handle.cancel()
                if timer.fired and uncancel is not None:
                    uncancel()
            results[position] = (index, msg, (True, result, clock() - start))

    def close(self) -> None:
        """Close the event loop (on the instance thread, at shutdown)."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None


class _CallTimer:
    """Cancels a slot's task when the call it is awaiting runs past ``timeoutMs``."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.fired = False

    def __call__(self) -> None:
        self.fired = True
        self.task.cancel()
