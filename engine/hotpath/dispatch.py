"""Per-message dispatch to the user function (pure-Python twin of ``ext/dispatch.pyx``).

:meth:`Dispatcher.run` takes one batch of received messages and, for each one:
decodes the payload with the codec of its topic, points the reused Context at it,
calls the user's function, times the call, encodes a non-``None`` result and hands
it to the :class:`~engine.hotpath.batching.OutputSender`. It never blocks and never
acknowledges anything: it reports, by index into the batch, which messages had an
output sent (to be acked once the producer confirms), which are done with nothing to
send (ack now), and which failed (user exception, decode/encode/send failure, or
over ``timeoutMs``) so the instance loop can retry or dead-letter them.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from engine.hotpath import protocols
from engine.hotpath.protocols import Codec, InstanceStats, SendOutput

__all__ = ["FAIL_SYSTEM", "FAIL_USER", "BatchOutcome", "Dispatcher", "format_error"]

#: The user's function raised, or ran past ``timeoutMs``.
FAIL_USER = 0
#: The framework failed the message: decode, encode or send.
FAIL_SYSTEM = 1

_MAX_ERROR_CHARS = 4000


def format_error(exc: BaseException) -> str:
    """The traceback of ``exc`` as text, bounded in length."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS // 2] + "\n...\n" + text[len(text) - _MAX_ERROR_CHARS // 2 :]
    return text


class BatchOutcome(protocols.BatchOutcome):
    """What happened to each message of a batch, by index into the batch."""

    __slots__ = ("done", "failed", "sent")

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.done: list[int] = []
        self.failed: list[tuple[int, int, str]] = []

    def __repr__(self) -> str:
        return f"BatchOutcome(sent={self.sent}, done={self.done}, failed={self.failed})"


class Dispatcher(protocols.Dispatcher):
    """Run batches of messages through one user function.

    Parameters
    ----------
    function
        The callable to invoke: a bound ``process`` method, a plain function, or a
        callable object.
    pass_context
        Call ``function(value, context)`` when true, ``function(value)`` otherwise.
    context
        The instance's Context; its ``_message`` attribute is set before each call.
    codecs
        Input codec per fully-qualified topic name.
    default_codec
        Codec for a topic missing from ``codecs`` (pattern subscriptions).
    output_codec
        Codec for results; ``None`` when the function has no output topic (results
        are then dropped, as Apache does).
    send
        ``send(payload, input_message)``, hands one output to the producer; ``None``
        when there is no output topic.
    stats
        Counters to update.
    timeout_ms
        A call that takes longer fails (its result is discarded); 0 disables.

    Every attribute is read again at the start of each :meth:`run`, and each codec is
    called per message, so a codec, sender or table changed between batches takes
    effect from the next batch on.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        pass_context: bool,
        context: Any,
        codecs: dict[str, Codec],
        default_codec: Codec,
        output_codec: Codec | None,
        send: SendOutput | None,
        stats: InstanceStats,
        timeout_ms: int = 0,
    ) -> None:
        self.function = function
        self.pass_context = pass_context
        self.context = context
        self.codecs = dict(codecs)
        self.default_codec = default_codec
        self.output_codec = output_codec
        self.send = send
        self.stats = stats
        self.timeout_ms = timeout_ms

    def run(self, messages: list[Any]) -> BatchOutcome:
        """Process ``messages`` in order; see the module docstring."""
        outcome = BatchOutcome()
        sent = outcome.sent
        done = outcome.done
        failed = outcome.failed
        stats = self.stats
        context = self.context
        function = self.function
        pass_context = self.pass_context
        output_codec = self.output_codec
        send = self.send
        codecs = self.codecs
        single = next(iter(codecs.values())) if len(codecs) == 1 else None
        default_codec = self.default_codec
        timeout_ns = self.timeout_ms * 1_000_000
        clock = time.perf_counter_ns

        ok_count = 0
        ok_latency_ns = 0
        stats.add_received(len(messages))
        if messages:
            stats.set_last_invocation(int(time.time() * 1000))
        for index, msg in enumerate(messages):
            codec = single if single is not None else codecs.get(msg.topic_name(), default_codec)
            try:
                value = codec.decode(msg.data())
            except Exception as exc:
                text = "could not decode message: " + format_error(exc)
                stats.add_system_exception(text)
                failed.append((index, FAIL_SYSTEM, text))
                continue
            context._message = msg
            start = clock()
            try:
                if pass_context:
                    result = function(value, context)
                else:
                    result = function(value)
            except Exception as exc:
                text = format_error(exc)
                stats.add_user_exception(text)
                failed.append((index, FAIL_USER, text))
                continue
            elapsed = clock() - start
            if timeout_ns and elapsed > timeout_ns:
                text = (
                    f"TimeoutError: process took {elapsed // 1_000_000} ms, over timeoutMs={self.timeout_ms}"
                )
                stats.add_user_exception(text)
                failed.append((index, FAIL_USER, text))
                continue
            ok_count += 1
            ok_latency_ns += elapsed
            if result is None or output_codec is None or send is None:
                done.append(index)
                continue
            try:
                send(output_codec.encode(result), msg)
            except Exception as exc:
                text = "could not publish result: " + format_error(exc)
                stats.add_system_exception(text)
                failed.append((index, FAIL_SYSTEM, text))
                continue
            sent.append(index)
        if ok_count:
            stats.add_successes(ok_count, ok_latency_ns / 1_000_000.0)
        return outcome
