# cython: language_level=3, boundscheck=False, wraparound=False
# Per-message dispatch to the user function (compiled twin of engine/hotpath/dispatch.py).
#
# Data: a Python list of the client's received messages (references; the client owns
# them). For each, ``data()`` returns a fresh ``bytes`` copy that the topic's Codec
# decodes (a C vtable call into serde.pyx, cimported through its .pxd, when the codec is
# the compiled one; a Python call otherwise), the reused Context is pointed at the
# message, the user callable runs (with the GIL held: user code is Python), and a
# non-None result is encoded by the output Codec to a new ``bytes`` object handed to
# the output sender, which copies it into the client. The codecs are read from the
# Dispatcher's attributes at each batch and called per message, never copied, so a
# codec changed after construction is used as the pure twin uses it.
# Timing uses CLOCK_MONOTONIC via clock_gettime; counters accumulate in C locals and
# reach the stats object once per batch. Everything runs on the instance thread under
# the GIL.

from engine.hotpath.native.serde cimport Codec

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


cdef inline object _decode(object codec, object data):
    if type(codec) is Codec:
        return (<Codec>codec).decode(data)
    return codec.decode(data)


cdef inline object _encode(object codec, object value):
    if type(codec) is Codec:
        return (<Codec>codec).encode(value)
    return codec.encode(value)


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
        cdef object output_codec = self.output_codec
        cdef object send = self.send
        cdef bint has_output = output_codec is not None and send is not None
        cdef dict codecs = self.codecs
        cdef object default_codec = self.default_codec
        cdef object single = next(iter(codecs.values())) if len(codecs) == 1 else None
        cdef long long timeout_ns = self.timeout_ms * 1000000
        cdef long long start, elapsed
        cdef long long ok_count = 0
        cdef long long ok_latency_ns = 0
        cdef Py_ssize_t index, n = len(messages)
        cdef object codec, msg, value, result

        stats.add_received(n)
        if n:
            stats.set_last_invocation(int(time.time() * 1000))
        for index in range(n):
            msg = messages[index]
            if single is not None:
                codec = single
            else:
                codec = codecs.get(msg.topic_name(), default_codec)
            try:
                value = _decode(codec, msg.data())
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
                send(_encode(output_codec, result), msg)
            except Exception as exc:
                text = "could not publish result: " + format_error(exc)
                stats.add_system_exception(text)
                failed.append((index, FAIL_SYSTEM, text))
                continue
            sent.append(index)
        if ok_count:
            stats.add_successes(ok_count, ok_latency_ns / 1000000.0)
        return outcome
