# cython: language_level=3, boundscheck=False, wraparound=False
# Acknowledgement bookkeeping (compiled twin of engine/hotpath/acks.py).
#
# Data: lists of the client's message objects (references only; the client owns the
# messages), dicts of per-partition positions as (ledger, entry, batch) tuples. A
# PendingAcks keeps references to the parked message lists (the caller's lists, not
# copies) until their batch completes; peek() returns a copy. Acks and nacks are calls
# into the client made from the instance thread with the GIL held; the client releases
# the GIL inside them as it needs.


from engine.hotpath.native.direct cimport DirectConsumer, DirectMessage


cpdef void ack_messages(object consumer, list messages, list indices=None) except *:
    """Acknowledge ``messages`` (or only those at ``indices``) on ``consumer``."""
    cdef Py_ssize_t i
    cdef DirectConsumer direct
    if type(consumer) is DirectConsumer:
        direct = <DirectConsumer>consumer
        if indices is None:
            for i in range(len(messages)):
                direct.acknowledge(messages[i])
        else:
            for i in indices:
                direct.acknowledge(messages[i])
        return
    cdef object ack = consumer.acknowledge
    if indices is None:
        for i in range(len(messages)):
            ack(messages[i])
    else:
        for i in indices:
            ack(messages[i])


cpdef void nack_messages(object consumer, list messages, list indices=None) except *:
    """Negatively acknowledge ``messages`` (or those at ``indices``) for redelivery."""
    cdef object nack = consumer.negative_acknowledge
    cdef Py_ssize_t i
    if indices is None:
        for i in range(len(messages)):
            nack(messages[i])
    else:
        for i in indices:
            nack(messages[i])


cpdef tuple position_of(object msg):
    """``(ledger, entry, batch index)`` of a message: its order within a partition."""
    if type(msg) is DirectMessage:
        return (<DirectMessage>msg).position()
    mid = msg.message_id()
    return (mid.ledger_id(), mid.entry_id(), mid.batch_index())


cdef class PendingAcks:
    """Inputs waiting for their outputs to be persisted, keyed by a batch token."""

    cdef dict _batches
    cdef long long _next

    def __init__(self):
        self._batches = {}
        self._next = 0

    def add(self, consumer, list messages):
        """Park ``messages`` of ``consumer``; returns the token to complete them with."""
        token = self._next
        self._next += 1
        self._batches[token] = (consumer, messages)
        return token

    def complete(self, token, bint ok):
        """Ack (``ok``) or nack the batch ``token``; returns how many messages it held."""
        entry = self._batches.pop(token, None)
        if entry is None:
            return 0
        consumer, messages = entry
        if ok:
            ack_messages(consumer, messages)
        else:
            nack_messages(consumer, messages)
        return len(messages)

    def peek(self, token):
        """The messages parked under ``token`` (empty if none)."""
        entry = self._batches.get(token)
        return list(entry[1]) if entry is not None else []

    def outstanding(self):
        """How many messages are waiting."""
        cdef Py_ssize_t total = 0
        for _, m in self._batches.values():
            total += len(m)
        return total


cdef class DuplicateFilter:
    """Drop messages at or before the last processed position of their partition."""

    cdef dict _last
    cdef set _retry

    def __init__(self):
        self._last = {}
        self._retry = set()

    def admit(self, list messages):
        """Split ``messages`` into ``(fresh, duplicates)``; fresh ones become processed."""
        cdef list fresh = []
        cdef list dups = []
        cdef tuple pos
        for msg in messages:
            topic = msg.topic_name()
            pos = position_of(msg)
            seen = self._last.get(topic)
            if seen is not None and pos <= seen:
                key = (topic, pos)
                if key in self._retry:
                    self._retry.discard(key)
                    fresh.append(msg)
                else:
                    dups.append(msg)
                continue
            self._last[topic] = pos
            fresh.append(msg)
        return fresh, dups

    def mark_failed(self, list messages):
        """Let the next delivery of these messages through again."""
        for msg in messages:
            self._retry.add((msg.topic_name(), position_of(msg)))

    def last_position(self, str topic):
        """The last processed position on ``topic``, if any."""
        return self._last.get(topic)
