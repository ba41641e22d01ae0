"""``process_batch(self, inputs, context)``: the function receives a whole batch at once.

It returns one output (or ``None``) per input, in order, so it can vectorize (numpy)
or call a service once per batch. When every input of the batch uses a numeric SerDe
(:class:`engine.function.serdes.NumericSerDe`: fixed-width numbers), the batch is
decoded into one numpy array in one step instead of message by message. The message
accessors of the Context answer for the batch's last input. If the call raises, every
input of the batch fails with that error; a result of the wrong length fails them as a
system error. With ``timeoutMs`` a call that has not returned in time fails every input
of the batch with a timeout error and is abandoned (:mod:`engine.instance.calls.timed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.function.serdes import NumericSerDe
from engine.instance.calls.common import DispatchBase, call_context
from engine.instance.calls.timed import CallTimedOut, TimedCall

__all__ = ["BatchDispatcher"]


class BatchDispatcher(DispatchBase):
    """Calls ``process_batch`` once per received batch."""

    def __init__(self, function: Callable[..., Any], **common: Any) -> None:
        super().__init__(**common)
        self.function = function
        self.timed = TimedCall(self.timeout_ms, "process_batch()")
        codecs = list(self.codecs.values()) or [self.default_codec]
        users = [getattr(c, "user", None) for c in codecs]
        first = users[0]
        self._numeric: NumericSerDe | None = (
            first if isinstance(first, NumericSerDe) and all(u is first for u in users) else None
        )

    def _values(self, msgs: list[Any], outcome: Any) -> tuple[list[tuple[int, Any]], Any]:
        numeric = self._numeric
        if numeric is not None and msgs:
            payloads = [m.data() for m in msgs]
            if all(len(p) == numeric.width for p in payloads):
                self.stats.add_received(len(msgs))
                self.stats.set_last_invocation(int(time.time() * 1000))
                return list(enumerate(msgs)), numeric.decode_many(b"".join(payloads))
        decoded = self.decode(msgs, outcome)
        return [(i, m) for i, m, _ in decoded], [v for _, _, v in decoded]

    def run(self, msgs: list[Any]) -> Any:
        """Process ``msgs`` with one call."""
        outcome = self.hot.dispatch.BatchOutcome()
        order, values = self._values(msgs, outcome)
        if not order:
            return outcome
        ctx = call_context(self.context, order[-1][1])
        start = time.perf_counter_ns()
        try:
            results = self.timed(self.function, (values, ctx), ctx)
        except Exception as exc:  # the function's error (or the timeout) fails the whole batch
            text = str(exc) if isinstance(exc, CallTimedOut) else self._format_error(exc)
            for index, _ in order:
                self.user_failure(outcome, index, text)
            return outcome
        elapsed = time.perf_counter_ns() - start
        try:
            results = list(results) if results is not None else [None] * len(order)
        except TypeError:
            results = []
        if len(results) != len(order):
            text = f"process_batch returned {len(results)} outputs for {len(order)} inputs"
            for index, _ in order:
                self.system_failure(outcome, index, text)
            return outcome
        for (index, msg), value in zip(order, results, strict=True):
            self.output(outcome, index, msg, value)
        self.stats.add_successes(len(order), elapsed / 1_000_000.0)
        return outcome

    @property
    def abandoned_calls(self) -> int:
        """Calls that ran past ``timeoutMs`` and were left to finish on their own thread."""
        return self.timed.abandoned_calls

    def close(self) -> None:
        """Stop the call thread (an abandoned call is not waited for)."""
        self.timed.close()
