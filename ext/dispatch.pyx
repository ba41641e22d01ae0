# cython: language_level=3, boundscheck=False, wraparound=False
# Per-message dispatch to the user function (compiled twin of engine/hotpath/dispatch.py).
#
# Data: a Python list of the client's received messages (references; the client owns
# them). For each, ``data()`` returns a fresh ``bytes`` copy that we decode with the
# C codec core, the reused Context is pointed at the message, the user callable runs
# (with the GIL held: user code is Python), and a non-None result is encoded to a new
# ``bytes`` object handed to the output sender, which copies it into the client.
# Timing uses CLOCK_MONOTONIC via clock_gettime; counters accumulate in C locals and
# reach the stats object once per batch.

include "codec_core.pxi"

import time
import traceback

from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

FAIL_USER = 0
FAIL_SYSTEM = 1

DEF _MAX_ERROR_CHARS = 4000


cdef inline long long _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <long long>ts.tv_sec * 1000000000 + ts.tv_nsec


def format_error(exc):
    """The traceback of ``exc`` as text, bounded in length."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS // 2] + "\n...\n" + text[len(text) - _MAX_ERROR_CHARS // 2 :]
    return text


cdef class BatchOutcome:
    """What happened to each message of a batch, by index into the batch."""

    cdef public list sent
    cdef public list done
    cdef public list failed

    def __init__(self):
        self.sent = []
        self.done = []
        self.failed = []

    def __repr__(self):
        return f"BatchOutcome(sent={self.sent}, done={self.done}, failed={self.failed})"


cdef class Dispatcher:
    """Run batches of messages through one user function (see the pure twin's docs)."""

    cdef public object function
    cdef public bint pass_context
    cdef public object context
    cdef public dict codecs
    cdef public object default_codec
    cdef public object output_codec
    cdef public object send
    cdef public object stats
    cdef public long long timeout_ms
    # C copies of the codecs: (kind, user) per topic, and for the single-topic case
    cdef dict _kinds
    cdef int _default_kind
    cdef object _default_user
    cdef bint _single
    cdef int _single_kind
    cdef object _single_user
    cdef int _out_kind
    cdef object _out_user

    def __init__(self, function, bint pass_context, context, dict codecs, default_codec,
                 output_codec, send, stats, long long timeout_ms=0):
        self.function = function
        self.pass_context = pass_context
        self.context = context
        self.codecs = dict(codecs)
        self.default_codec = default_codec
        self.output_codec = output_codec
        self.send = send
        self.stats = stats
        self.timeout_ms = timeout_ms
        self._kinds = {topic: (c.kind, c.user) for topic, c in self.codecs.items()}
        self._default_kind = default_codec.kind
        self._default_user = default_codec.user
        self._single = len(self.codecs) == 1
        if self._single:
            codec = next(iter(self.codecs.values()))
            self._single_kind = codec.kind
            self._single_user = codec.user
        if output_codec is not None:
            self._out_kind = output_codec.kind
            self._out_user = output_codec.user

    def run(self, list messages):
        """Process ``messages`` in order; see engine.hotpath.dispatch."""
        cdef BatchOutcome outcome = BatchOutcome()
        cdef list sent = outcome.sent
        cdef list done = outcome.done
        cdef list failed = outcome.failed
        cdef object stats = self.stats
        cdef object context = self.context
        cdef object function = self.function
        cdef bint pass_context = self.pass_context
        cdef bint has_output = self.output_codec is not None and self.send is not None
        cdef object send = self.send
        cdef long long timeout_ns = self.timeout_ms * 1000000
        cdef long long start, elapsed
        cdef long long ok_count = 0
        cdef long long ok_latency_ns = 0
        cdef Py_ssize_t index, n = len(messages)
        cdef int kind
        cdef object user, msg, value, result, entry

        stats.add_received(n)
        if n:
            stats.set_last_invocation(int(time.time() * 1000))
        for index in range(n):
            msg = messages[index]
            if self._single:
                kind = self._single_kind
                user = self._single_user
            else:
                entry = self._kinds.get(msg.topic_name())
                if entry is None:
                    kind = self._default_kind
                    user = self._default_user
                else:
                    kind = (<tuple>entry)[0]
                    user = (<tuple>entry)[1]
            try:
                value = _decode(kind, user, msg.data())
            except Exception as exc:
                text = "could not decode message: " + format_error(exc)
                stats.add_system_exception(text)
                failed.append((index, FAIL_SYSTEM, text))
                continue
            context._message = msg
            start = _now_ns()
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
            elapsed = _now_ns() - start
            if timeout_ns and elapsed > timeout_ns:
                text = f"TimeoutError: process took {elapsed // 1000000} ms, over timeoutMs={self.timeout_ms}"
                stats.add_user_exception(text)
                failed.append((index, FAIL_USER, text))
                continue
            ok_count += 1
            ok_latency_ns += elapsed
            if result is None or not has_output:
                done.append(index)
                continue
            try:
                send(_encode(self._out_kind, self._out_user, result), msg)
            except Exception as exc:
                text = "could not publish result: " + format_error(exc)
                stats.add_system_exception(text)
                failed.append((index, FAIL_SYSTEM, text))
                continue
            sent.append(index)
        if ok_count:
            stats.add_successes(ok_count, ok_latency_ns / 1000000.0)
        return outcome
