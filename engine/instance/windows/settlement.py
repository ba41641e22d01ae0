"""Window functions: ``process(self, inputs, context)`` gets a window's values as a list.

:class:`WindowedSettlement` decodes each input, stamps it (processing time, or event
time from ``timestampExtractorClassName``), buffers it (:class:`WindowBuffer`) and,
when a window fires, calls the function once with the window's values; the window's
bounds are on the Context (``get_window_start()``/``get_window_end()``), its result is
the window's output. Inputs are acknowledged when they leave every window:

* ATLEAST_ONCE: once the output of the window that expired them is persisted; if the
  function raises, the expiring inputs are retried (negative ack) and dead-lettered
  after ``maxMessageRetries``;
* ATMOST_ONCE: on receipt;
* EFFECTIVELY_ONCE (tumbling windows): each window is settled by the
  EFFECTIVELY_ONCE settlement as one batch, so the window's state changes and its
  inputs' progress commit in one transaction: a crash mid-window loses no input (they
  were unacknowledged), and a window that committed is never counted again (its
  inputs are known as applied when they come back).

With event time, a watermark (the newest timestamp less ``maxLagMs``, moved every
``watermarkEmitIntervalMs``) closes time windows; an input older than the watermark
is late and goes to ``lateDataTopic`` (or is counted and acknowledged).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from engine.config.windows import WindowSpec
from engine.function.loader import import_object
from engine.instance.calls.common import DispatchBase, call_context
from engine.instance.calls.timed import CallTimedOut, TimedCall
from engine.instance.progress import position_with_size
from engine.instance.settlement.base import Settlement, SettlementParts
from engine.instance.settlement.effectively_once import EffectivelyOnce
from engine.instance.settlement.flushes import FlushTracker
from engine.instance.windows.buffer import Fired, WindowBuffer

__all__ = ["WindowCall", "WindowedSettlement", "timestamp_extractor"]

log = logging.getLogger(__name__)


def timestamp_extractor(name: str) -> Callable[[Any], int]:
    """The extractor named by ``timestampExtractorClassName``: ``extract_timestamp(value)`` or a callable."""
    target = import_object(name)
    if inspect.isclass(target):
        target = target()
    method = getattr(target, "extract_timestamp", None)
    if callable(method):
        return method
    if callable(target):
        return target
    raise TypeError(f"timestampExtractorClassName {name!r}: needs extract_timestamp(value) or to be callable")


class WindowCall(DispatchBase):
    """Calls the function once with a window's values; the output rides on the window's last input."""

    def __init__(self, function: Callable[..., Any], pass_context: bool, **common: Any) -> None:
        super().__init__(**common)
        self.function = function
        self.pass_context = pass_context
        #: With ``timeoutMs`` a call past it fails the window's inputs (:mod:`engine.instance.calls.timed`).
        self.timed = TimedCall(self.timeout_ms, "process()")
        #: Decoded values by ``id()`` of their input, filled by the settlement before a window
        #: runs. An input is buffered (so alive, its id its own) as long as its value is here:
        #: the settlement drops the value when the input leaves every window, and all of
        #: them when the buffer is dropped.
        self.values: dict[int, Any] = {}
        #: The bounds of the window about to run.
        self.bounds = (0, 0)

    def run(self, msgs: list[Any]) -> Any:
        """One window of ``msgs``: one call; every input fails if it raises."""
        outcome = self.hot.dispatch.BatchOutcome()
        if not msgs:
            return outcome
        by_input = self.values
        values = [by_input[id(m)] for m in msgs]
        ctx = call_context(self.context, msgs[-1])
        ctx._window = self.bounds
        self.stats.set_last_invocation(int(time.time() * 1000))
        start = time.perf_counter_ns()
        args = (values, ctx) if self.pass_context else (values,)
        try:
            result = self.timed(self.function, args, ctx)
        except Exception as exc:  # the function's error (or the timeout) fails the window's inputs
            text = str(exc) if isinstance(exc, CallTimedOut) else self._format_error(exc)
            for index in range(len(msgs)):
                self.user_failure(outcome, index, text)
            return outcome
        self.stats.add_successes(len(msgs), (time.perf_counter_ns() - start) / 1_000_000.0)
        outcome.done.extend(range(len(msgs) - 1))
        self.output(outcome, len(msgs) - 1, msgs[-1], result)
        outcome.done.sort()
        return outcome

    @property
    def abandoned_calls(self) -> int:
        """Calls that ran past ``timeoutMs`` and were left to finish on their own thread."""
        return self.timed.abandoned_calls

    def close(self) -> None:
        """Stop the call thread (an abandoned call is not waited for)."""
        self.timed.close()


class WindowedSettlement(Settlement):
    """Buffer inputs into windows, run the function per window, acknowledge on expiry."""

    def __init__(self, parts: SettlementParts, call: WindowCall, window: WindowSpec) -> None:
        super().__init__(parts)
        self.window = window
        self.call = call
        self.buffer = WindowBuffer(window)
        self.flushes = FlushTracker(parts.hot, parts.producers, parts.stats, self._on_settled)
        self._extract = (
            timestamp_extractor(window.timestamp_extractor) if window.timestamp_extractor else None
        )
        self._watermark: int | None = None
        self._max_ts: int | None = None
        self._emitted_at = 0.0
        self.late = 0
        self.inner: EffectivelyOnce | None = None
        if window.guarantee == "EFFECTIVELY_ONCE":
            self.inner = EffectivelyOnce(parts)
        #: Bumped whenever the buffer is dropped, so windows fired before that are not run.
        self._generation = 0
        self.inputs.on_redeliver.append(self._forget_buffer)

    def start(self) -> None:
        """Load the committed progress (EFFECTIVELY_ONCE)."""
        if self.inner is not None:
            self.inner.start()

    @property
    def busy(self) -> bool:
        return self.flushes.busy

    def _forget_buffer(self) -> None:
        # Every unacknowledged input is about to be delivered again: buffered ones included.
        self.buffer.clear()
        self.call.values.clear()
        self._generation += 1

    def _on_settled(self, msgs: list[Any], ok: bool) -> None:
        if ok:
            self.retries.forget(msgs)

    # -- the loop ------------------------------------------------------------------------------------
    def poll(self) -> None:
        self.flushes.drain()
        if self.window.slide_ms is not None:
            clock = self._clock()
            if clock is not None:
                self._fire(self.buffer.advance(clock))
        super().poll()

    def _clock(self) -> int | None:
        if self._extract is None:
            return int(time.time() * 1000)
        now = time.monotonic()
        if self._max_ts is not None and now - self._emitted_at >= self.window.watermark_interval_ms / 1000.0:
            self._emitted_at = now
            self._watermark = self._max_ts - self.window.max_lag_ms
        return self._watermark

    def settle(self, msgs: list[Any]) -> None:
        if self.window.guarantee == "ATMOST_ONCE":
            self.inputs.ack(msgs)
        call = self.call
        codecs, default = call.codecs, call.default_codec
        values = call.values
        applied = self.inner.progress if self.inner is not None else None
        now = int(time.time() * 1000)
        pairs: list[tuple[int, Any]] = []
        late: list[Any] = []
        self.stats.add_received(len(msgs))
        # One input topic: its codec for every input, whatever partition it came from (as the hot path).
        one_codec = next(iter(codecs.values())) if len(codecs) == 1 else None
        for msg in msgs:
            if applied is not None and self._applied(applied, msg):
                self.duplicates_dropped += 1
                self.inputs.ack([msg])
                continue
            try:
                codec = one_codec if one_codec is not None else codecs.get(msg.topic_name(), default)
                value = codec.decode(msg.data())
                ts = int(self._extract(value)) if self._extract is not None else now
            except Exception as exc:  # undecodable or unstamped: fails this input alone
                self._failed([msg], "could not decode message: " + call._format_error(exc), system=True)
                continue
            if self._watermark is not None and ts < self._watermark:
                late.append(msg)
                continue
            if self._extract is not None and (self._max_ts is None or ts > self._max_ts):
                self._max_ts = ts
            values[id(msg)] = value
            pairs.append((ts, msg))
        if late:
            self._late(late)
        self._fire(self.buffer.add_many(pairs))

    @staticmethod
    def _applied(progress: dict[str, Any], msg: Any) -> bool:
        known = progress.get(msg.topic_name())
        return known is not None and bool(known.applied(position_with_size(msg)))

    def _fire(self, windows: list[Fired]) -> None:
        generation = self._generation
        for window in windows:
            if self._generation != generation:
                return  # the inputs are coming again; these windows will form again
            self.call.bounds = (window.start, window.end)
            if self.inner is not None:  # tumbling: the window's inputs are exactly the expired ones
                self.inner.process(window.items, acknowledge=True)
                self._forget_values(window.expired)
                continue
            outcome = self.call.run(window.items)
            self._forget_values(window.expired)
            failure = outcome.failed[0][2] if outcome.failed else self._commit_state()
            if failure:
                self._failed(window.expired, failure, system=not outcome.failed)
                self.flushes.flush(self.inputs.raw, None)
                continue
            if outcome.sent:
                self.producers.touch(self.spec.output)  # type: ignore[arg-type]
            if self.window.guarantee == "ATMOST_ONCE":
                self.flushes.flush(self.inputs.raw, None)
            else:
                self.flushes.flush(self.inputs.raw, window.expired)

    def reject(self, msg: Any, text: str) -> None:
        if self.inner is not None:
            self.inner.reject(msg, text)
        elif self.window.guarantee == "ATMOST_ONCE":
            self.inputs.ack([msg])
        else:
            self._dead_letter(msg, text)

    def _forget_values(self, msgs: list[Any]) -> None:
        pop = self.call.values.pop
        for msg in msgs:
            pop(id(msg), None)

    def _commit_state(self) -> str:
        """Commit the window's state changes; the error text, or empty when committed."""
        buffer = self.parts.state_buffer
        if buffer.is_empty():
            return ""
        deltas, resets, values = buffer.drain()
        store = self.parts.state_store
        assert store is not None  # the Context buffers state only with a store
        try:
            store.commit(self.spec.fqfn, deltas, resets, values)
        except Exception as exc:  # any store failure fails the window; the text says which
            return f"state commit failed: {type(exc).__name__}: {exc}"
        return ""

    def _failed(self, msgs: list[Any], text: str, system: bool) -> None:
        if system:
            self.stats.add_system_exception(text)
        if self.window.guarantee == "ATMOST_ONCE" or not msgs:
            return
        retry = [m for m in msgs if self.retries.may_retry(m)]
        if retry:
            self.inputs.nack(retry)
        retried = {id(m) for m in retry}
        for msg in msgs:
            if id(msg) not in retried:
                self._dead_letter(msg, text)

    def _dead_letter(self, msg: Any, text: str) -> None:
        topic = self.dead_letters.send(msg, text)
        if topic is None:
            self.inputs.nack([msg])
            return
        self.dead_letters.count += 1
        self.flushes.flush_topic(self.inputs.raw, topic, [msg])

    def _late(self, msgs: list[Any]) -> None:
        self.late += len(msgs)
        topic = self.window.late_data_topic
        if topic is None:
            log.info("%s: %d late inputs dropped (no lateDataTopic)", self.spec.fqfn, len(msgs))
            if self.window.guarantee != "ATMOST_ONCE":
                self.inputs.ack(msgs)
            return
        producer = self.producers.get(topic)
        for msg in msgs:
            key = msg.partition_key() or None
            producer.send_async(msg.data(), None, properties=dict(msg.properties()), partition_key=key)
        self.producers.touch(topic)
        self.flushes.flush(self.inputs.raw, None if self.window.guarantee == "ATMOST_ONCE" else msgs)

    def shutdown(self, deadline: float) -> None:
        super().shutdown(deadline)
        self.flushes.drain_until(deadline)
