"""What every way of calling the function shares: decoding, the outcome, outputs and stats.

The serial hot path (``hot.dispatch.Dispatcher``) does all of this per message in one
compiled loop. The concurrent call modes (async, threads, whole batches) are bound by
the function's own latency, not by per-message overhead, so they are written in
Python; they produce the same :class:`BatchOutcome` (by index into the batch: sent,
done, failed) for the same settlements, publish outputs in input order, and keep the
same statistics.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from engine.hotpath import HotPath

__all__ = ["CallResult", "DispatchBase", "call_context"]

#: Per call: ``(ok, result or error text, elapsed ns)``.
CallResult = tuple[bool, Any, int]


#: Per Context class: true when a copy of its ``__dict__`` is a whole shallow copy.
_PLAIN: dict[type, bool] = {}


def _plain(cls: type) -> bool:
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = (
            not hasattr(cls, "__copy__")
            and cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__reduce__ is object.__reduce__
            and not any("__slots__" in vars(k) for k in cls.__mro__)
        )
    return plain


def call_context(context: Any, msg: Any) -> Any:
    """A shallow copy of the instance's Context whose message accessors answer for ``msg``.

    A plain object (attributes in its ``__dict__`` only, no copy protocol of its own) is
    copied as ``copy.copy`` would, a new instance of its class with a copy of its
    attributes, without ``copy``'s generic protocol: this runs once per call.
    """
    cls: Any = type(context)
    if not _plain(cls):
        ctx = copy.copy(context)
        ctx._message = msg
        return ctx
    ctx = cls.__new__(cls)
    state = context.__dict__.copy()
    state["_message"] = msg
    ctx.__dict__ = state
    return ctx


class DispatchBase:
    """Decoding, encoding, sending and counting for one batch, shared by the call modes."""

    def __init__(
        self,
        hot: HotPath,
        context: Any,
        codecs: dict[str, Any],
        default_codec: Any,
        output_codec: Any,
        send: Any,
        stats: Any,
        timeout_ms: int,
    ) -> None:
        self.hot = hot
        self.context = context
        self.codecs = codecs
        self.default_codec = default_codec
        self.output_codec = output_codec
        self.send = send
        self.stats = stats
        self.timeout_ms = timeout_ms
        self._format_error = hot.dispatch.format_error
        self._fail_user = hot.dispatch.FAIL_USER
        self._fail_system = hot.dispatch.FAIL_SYSTEM

    def decode(self, msgs: list[Any], outcome: Any) -> list[tuple[int, Any, Any]]:
        """``(index, message, value)`` of every input that decodes; the rest fail (system)."""
        self.stats.add_received(len(msgs))
        if msgs:
            self.stats.set_last_invocation(int(time.time() * 1000))
        decoded = []
        codecs, default = self.codecs, self.default_codec
        single = next(iter(codecs.values())) if len(codecs) == 1 else None  # as the hot path
        for index, msg in enumerate(msgs):
            codec = single if single is not None else codecs.get(msg.topic_name(), default)
            try:
                decoded.append((index, msg, codec.decode(msg.data())))
            except Exception as exc:  # any decoding error fails this input, as in the hot path
                self.system_failure(outcome, index, "could not decode message: " + self._format_error(exc))
        return decoded

    def system_failure(self, outcome: Any, index: int, text: str) -> None:
        """Input ``index`` failed in the framework."""
        self.stats.add_system_exception(text)
        outcome.failed.append((index, self._fail_system, text))

    def user_failure(self, outcome: Any, index: int, text: str) -> None:
        """Input ``index`` failed in the function (or ran past ``timeoutMs``)."""
        self.stats.add_user_exception(text)
        outcome.failed.append((index, self._fail_user, text))

    def timeout_text(self) -> str:
        """The error of a call that ran past ``timeoutMs``."""
        return f"TimeoutError: process() ran over timeoutMs={self.timeout_ms}"

    def finish(self, outcome: Any, results: list[tuple[int, Any, CallResult]]) -> Any:
        """Count, encode and send ``results`` (in input order); returns the outcome."""
        ok_count = 0
        latency_ns = 0
        for index, msg, (ok, value, elapsed) in results:
            if not ok:
                self.user_failure(outcome, index, value)
                continue
            ok_count += 1
            latency_ns += elapsed
            self.output(outcome, index, msg, value)
        if ok_count:
            self.stats.add_successes(ok_count, latency_ns / 1_000_000.0)
        outcome.failed.sort()
        return outcome

    def output(self, outcome: Any, index: int, msg: Any, value: Any) -> None:
        """Send ``value`` as the output of input ``index`` (or mark it done)."""
        if value is None or self.output_codec is None or self.send is None:
            outcome.done.append(index)
            return
        try:
            self.send(self.output_codec.encode(value), msg)
        except Exception as exc:  # any encode or send error fails this input, as in the hot path
            self.system_failure(outcome, index, "could not publish result: " + self._format_error(exc))
            return
        outcome.sent.append(index)
