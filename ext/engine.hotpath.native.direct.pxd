# C-level declarations of the direct client views, shared by direct.pyx (which
# implements them) and batching.pyx / acks.pyx (which cimport them and call the C
# methods without a Python attribute lookup).
#
# Data: a DirectMessage owns one received message of the client's C API (alone, or as
# one slot of a batch that a DirectBatch owns and frees when its last message goes); a
# DirectConsumer / DirectProducer holds the client's C++ handle behind a reference to the
# pybind object that owns it, so the handle lives as long as the view.

cdef class DirectBatch:
    cdef void *messages


cdef class DirectMessage:
    cdef void *ptr
    cdef DirectBatch batch
    cdef bint owned
    cdef object _topic
    cdef object _message_id
    cpdef tuple position(self)


cdef class DirectView:
    cdef void *handle
    cdef public object raw
    cdef object _capsule


cdef class DirectConsumer(DirectView):
    cpdef list batch_receive(self)
    cpdef acknowledge(self, object msg)
    cpdef negative_acknowledge(self, object msg)


cdef class DirectProducer(DirectView):
    cdef void send(self, bytes payload, object source, bint forward_key, bint forward_properties,
                   object extra_properties, object sequence_id) except *
    cdef void send_record(self, bytes payload, object key, dict properties, unsigned long long event_time) except *
