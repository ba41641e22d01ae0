"""``timeoutMs`` for the calls that take many inputs at once: ``process_batch`` and a window's call.

Without ``timeoutMs`` such a call runs on the instance's thread, as the serial hot
path does. With it, :class:`TimedCall` runs the call on a call thread of its own and
waits at most ``timeoutMs``: a call that has not returned by then raises
:class:`CallTimedOut`, and its dispatcher fails every input of the call with the
timeout error as a user exception, as a plain call's timeout fails its input (the
settlement negatively acknowledges them, they are retried and dead-lettered after
``maxMessageRetries``), and the instance goes on with the next batch or window.

Python cannot stop a thread, so the call is *abandoned*: later calls run on a fresh
call thread, the abandoned call's Context refuses state changes (its inputs were
already failed) and it is counted in :attr:`TimedCall.abandoned_calls` (status's
``numAbandonedCalls``). This holds in both runtimes: a plain call past ``timeoutMs``
in a process-runtime child replaces the child, whose crash ledger then attributes the
death to the one input that was running; a batch's or a window's inputs are failed
here instead, because a window's inputs are not the batch the ledger records, and
replacing the child would only redeliver them into the same window again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from engine.instance.calls.pool import CallPool

__all__ = ["AbandonedCallError", "CallTimedOut", "TimedCall", "refuse_state_changes"]


class AbandonedCallError(RuntimeError):
    """A call that ran past ``timeoutMs`` was abandoned; its state changes are refused."""


class CallTimedOut(Exception):
    """The call did not return within ``timeoutMs``; ``str()`` is the inputs' error text."""


class _AbandonedState:
    """The state of an abandoned call: every change is refused (its inputs were settled)."""

    def _refuse(self, *_args: Any) -> Any:
        raise AbandonedCallError("this call ran past timeoutMs and was abandoned; state is read-only to it")

    incr = delete_counter = counter_delta = put = pending_value = _refuse


def refuse_state_changes(ctx: Any) -> None:
    """From now on the call running with ``ctx`` can change no state (it was abandoned)."""
    if getattr(ctx, "_state", None) is None:
        return
    refused = _AbandonedState()
    ctx._state = refused
    if "incr_counter" in vars(ctx):  # bound to the buffer for speed: rebind
        ctx.incr_counter = refused.incr


class TimedCall:
    """Runs one call at a time, on a call thread when ``timeout_ms`` is set, for at most that long.

    ``what`` names the call in the error (``"process_batch()"``, ``"process()"``).
    """

    def __init__(self, timeout_ms: int, what: str) -> None:
        self.timeout_ms = timeout_ms
        self.text = f"TimeoutError: {what} ran over timeoutMs={timeout_ms}"
        self._pool: CallPool | None = CallPool(1, name="timed-call") if timeout_ms else None
        #: Calls that ran past ``timeoutMs`` and were left to finish on their own thread.
        self.abandoned_calls = 0

    def __call__(self, function: Callable[..., Any], args: tuple[Any, ...], ctx: Any) -> Any:
        """``function(*args)``; raises :class:`CallTimedOut` past ``timeoutMs`` (``ctx`` is then refused)."""
        pool = self._pool
        if pool is None:
            return function(*args)
        future = pool.submit(function, *args)
        try:
            return future.result(self.timeout_ms / 1000.0)
        except FutureTimeout:
            self.abandoned_calls += 1
            refuse_state_changes(ctx)
            # The abandoned thread ends when (if ever) its call returns; later calls get a new one.
            self._pool = CallPool(1, name="timed-call")
            pool.shutdown()
            raise CallTimedOut(self.text) from None

    def close(self) -> None:
        """Stop the call thread without waiting for an abandoned call."""
        if self._pool is not None:
            self._pool.shutdown()
