# cython: language_level=3, boundscheck=False, wraparound=False
# Direct client views (compiled twin of engine/hotpath/direct.py).
#
# The client's Python binding wraps every received message and every output in a
# pybind11 object and waits on a promise for each acknowledgement. The same library
# exports its C API; these views call it on the very consumer and producer the
# binding created (their C++ handles come from engine.broker.direct), so batches are
# received, outputs built and sent, and inputs acknowledged without a Python object
# per call. Everything else (configuration, flush, seek, close, redelivery) stays with
# the binding's object, which each view keeps alive and hands attribute lookups to.
#
# Data: a DirectBatch owns the C API's message array from one batch_receive and frees
# it when its last DirectMessage is gone; a DirectMessage from a single receive owns
# its message. Payloads are copied into new ``bytes`` objects on data(); strings are
# decoded as UTF-8 at each call (a topic name once per message). Outputs are built in a
# C message that the library copies the payload into; it is freed after send_async,
# whose C callback frees the returned message id on the client's thread without the
# GIL. Calls that may block (receives, sends into a full queue) release the GIL.
# The library's functions are resolved once, by attach(), from the binding's module.

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdio cimport sscanf
from libc.stdlib cimport free
from libc.string cimport strchr
from posix.dlfcn cimport RTLD_LAZY, dlopen, dlsym
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_GetName

import base64

cdef extern from "<dlfcn.h>" nogil:
    const int RTLD_NOLOAD

ctypedef int (*batch_receive_f)(void *consumer, void **msgs) noexcept nogil
ctypedef int (*receive_timeout_f)(void *consumer, void **msg, int timeout_ms) noexcept nogil
ctypedef size_t (*messages_size_f)(void *msgs) noexcept nogil
ctypedef void *(*messages_get_f)(void *msgs, size_t index) noexcept nogil
ctypedef void (*free_f)(void *obj) noexcept nogil
ctypedef const void *(*get_data_f)(void *msg) noexcept nogil
ctypedef uint32_t (*get_length_f)(void *msg) noexcept nogil
ctypedef const char *(*get_str_f)(void *msg) noexcept nogil
ctypedef uint64_t (*get_u64_f)(void *msg) noexcept nogil
ctypedef int (*get_int_f)(void *msg) noexcept nogil
ctypedef void *(*get_ptr_f)(void *msg) noexcept nogil
ctypedef void *(*serialize_f)(void *message_id, int *length) noexcept nogil
ctypedef char *(*id_str_f)(void *message_id) noexcept nogil
ctypedef int (*map_size_f)(void *map) noexcept nogil
ctypedef const char *(*map_item_f)(void *map, int index) noexcept nogil
ctypedef void *(*create_f)() noexcept nogil
ctypedef void (*set_content_f)(void *msg, const void *data, size_t size) noexcept nogil
ctypedef void (*set_str_f)(void *msg, const char *value) noexcept nogil
ctypedef void (*set_property_f)(void *msg, const char *name, const char *value) noexcept nogil
ctypedef void (*set_i64_f)(void *msg, int64_t value) noexcept nogil
ctypedef void (*set_u64_f)(void *msg, uint64_t value) noexcept nogil
ctypedef void (*send_callback_f)(int result, void *message_id, void *ctx) noexcept nogil
ctypedef void (*send_async_f)(void *producer, void *msg, send_callback_f callback, void *ctx) noexcept nogil
ctypedef void (*result_callback_f)(int result, void *ctx) noexcept nogil
ctypedef void (*ack_async_f)(void *consumer, void *msg, result_callback_f callback, void *ctx) noexcept nogil
ctypedef void (*nack_f)(void *consumer, void *msg) noexcept nogil

cdef batch_receive_f c_batch_receive = NULL
cdef receive_timeout_f c_receive_timeout = NULL
cdef messages_size_f c_messages_size = NULL
cdef messages_get_f c_messages_get = NULL
cdef free_f c_messages_free = NULL
cdef free_f c_message_free = NULL
cdef get_data_f c_get_data = NULL
cdef get_length_f c_get_length = NULL
cdef get_str_f c_get_topic = NULL
cdef get_str_f c_get_key = NULL
cdef get_int_f c_has_key = NULL
cdef get_str_f c_get_ordering_key = NULL
cdef get_int_f c_has_ordering_key = NULL
cdef get_str_f c_get_publisher_name = NULL
cdef get_u64_f c_get_publish_time = NULL
cdef get_u64_f c_get_event_time = NULL
cdef get_int_f c_get_redelivery_count = NULL
cdef get_ptr_f c_get_message_id = NULL
cdef get_ptr_f c_get_properties = NULL
cdef serialize_f c_id_serialize = NULL
cdef id_str_f c_id_str = NULL
cdef free_f c_id_free = NULL
cdef map_size_f c_map_size = NULL
cdef map_item_f c_map_key = NULL
cdef map_item_f c_map_value = NULL
cdef free_f c_map_free = NULL
cdef create_f c_message_create = NULL
cdef set_content_f c_set_content = NULL
cdef set_str_f c_set_key = NULL
cdef set_property_f c_set_property = NULL
cdef set_i64_f c_set_sequence_id = NULL
cdef set_u64_f c_set_event_time = NULL
cdef send_async_f c_send_async = NULL
cdef ack_async_f c_ack_async = NULL
cdef nack_f c_nack = NULL

cdef object _message_id_from_bytes = None
cdef dict _errors = {}
cdef object _default_error = RuntimeError
cdef bint _attached = False



cdef void *_symbol(void *lib, str obj, str operation) except NULL:
    """The address of ``pulsar_<obj>_<operation>`` in ``lib``."""
    name = f"pulsar_{obj}_{operation}"
    cdef void *found = dlsym(lib, name.encode("ascii"))
    if found == NULL:
        raise LookupError(f"the client library exports no {name}")
    return found


def attach(str library, message_id_from_bytes, dict errors, default_error):
    """Resolve the client's C API from the loaded module at ``library``.

    ``message_id_from_bytes`` turns a serialized id into the binding's MessageId;
    ``errors`` maps a result code to the binding's exception class (``default_error``
    for the others). Returns ``None`` once the views can be used, else why not.
    """
    global _attached, _message_id_from_bytes, _errors, _default_error
    global c_batch_receive, c_receive_timeout, c_messages_size, c_messages_get, c_messages_free
    global c_message_free, c_get_data, c_get_length, c_get_topic, c_get_key, c_has_key
    global c_get_ordering_key, c_has_ordering_key, c_get_publisher_name, c_get_publish_time
    global c_get_event_time, c_get_redelivery_count, c_get_message_id, c_get_properties
    global c_id_serialize, c_id_str, c_id_free, c_map_size, c_map_key, c_map_value, c_map_free
    global c_message_create, c_set_content, c_set_key, c_set_property, c_set_sequence_id
    global c_send_async, c_ack_async, c_nack, c_set_event_time
    if _attached:
        return None
    cdef void *lib = dlopen(library.encode(), RTLD_LAZY | RTLD_NOLOAD)
    if lib == NULL:
        return f"{library} is not loaded"
    try:
        c_batch_receive = <batch_receive_f>_symbol(lib, "consumer", "batch_receive")
        c_receive_timeout = <receive_timeout_f>_symbol(lib, "consumer", "receive_with_timeout")
        c_messages_size = <messages_size_f>_symbol(lib, "messages", "size")
        c_messages_get = <messages_get_f>_symbol(lib, "messages", "get")
        c_messages_free = <free_f>_symbol(lib, "messages", "free")
        c_message_free = <free_f>_symbol(lib, "message", "free")
        c_get_data = <get_data_f>_symbol(lib, "message", "get_data")
        c_get_length = <get_length_f>_symbol(lib, "message", "get_length")
        c_get_topic = <get_str_f>_symbol(lib, "message", "get_topic_name")
        c_get_key = <get_str_f>_symbol(lib, "message", "get_partitionKey")
        c_has_key = <get_int_f>_symbol(lib, "message", "has_partition_key")
        c_get_ordering_key = <get_str_f>_symbol(lib, "message", "get_orderingKey")
        c_has_ordering_key = <get_int_f>_symbol(lib, "message", "has_ordering_key")
        c_get_publisher_name = <get_str_f>_symbol(lib, "message", "get_producer_name")
        c_get_publish_time = <get_u64_f>_symbol(lib, "message", "get_publish_timestamp")
        c_get_event_time = <get_u64_f>_symbol(lib, "message", "get_event_timestamp")
        c_get_redelivery_count = <get_int_f>_symbol(lib, "message", "get_redelivery_count")
        c_get_message_id = <get_ptr_f>_symbol(lib, "message", "get_message_id")
        c_get_properties = <get_ptr_f>_symbol(lib, "message", "get_properties")
        c_id_serialize = <serialize_f>_symbol(lib, "message_id", "serialize")
        c_id_free = <free_f>_symbol(lib, "message_id", "free")
        c_map_size = <map_size_f>_symbol(lib, "string_map", "size")
        c_map_key = <map_item_f>_symbol(lib, "string_map", "get_key")
        c_map_value = <map_item_f>_symbol(lib, "string_map", "get_value")
        c_map_free = <free_f>_symbol(lib, "string_map", "free")
        c_message_create = <create_f>_symbol(lib, "message", "create")
        c_set_content = <set_content_f>_symbol(lib, "message", "set_content")
        c_set_key = <set_str_f>_symbol(lib, "message", "set_partition_key")
        c_set_property = <set_property_f>_symbol(lib, "message", "set_property")
        c_set_sequence_id = <set_i64_f>_symbol(lib, "message", "set_sequence_id")
        c_send_async = <send_async_f>_symbol(lib, "producer", "send_async")
        c_ack_async = <ack_async_f>_symbol(lib, "consumer", "acknowledge_async")
        c_nack = <nack_f>_symbol(lib, "consumer", "negative_acknowledge")
        c_id_str = <id_str_f>_symbol(lib, "message_id", "str")
        c_set_event_time = <set_u64_f>_symbol(lib, "message", "set_event_timestamp")
    except LookupError as exc:
        return str(exc)
    _message_id_from_bytes = message_id_from_bytes
    _errors = dict(errors)
    _default_error = default_error
    _attached = True
    return None


def attached():
    """True once :func:`attach` resolved the client's C API."""
    return _attached


cdef void _raise(int result, str what) except *:
    cls = _errors.get(result, _default_error)
    raise cls(f"{what}: result {result}")


cdef void _put_properties(void *msg, dict properties) except *:
    cdef bytes name, value
    for k, v in properties.items():
        name = (<str>k).encode("utf-8")
        value = (<str>v).encode("utf-8")
        c_set_property(msg, name, value)


cdef void _sent(int result, void *message_id, void *ctx) noexcept nogil:
    if message_id != NULL:
        c_id_free(message_id)


cdef inline str _text(const char *value):
    if value == NULL:
        return ""
    return value.decode("utf-8", "replace")


cdef class DirectBatch:
    """The C API's message array of one batch, freed with its last message."""

    def __dealloc__(self):
        if self.messages != NULL:
            c_messages_free(self.messages)
            self.messages = NULL


cdef DirectMessage _message(void *ptr, DirectBatch batch, bint owned):
    cdef DirectMessage msg = DirectMessage.__new__(DirectMessage)
    msg.ptr = ptr
    msg.batch = batch
    msg.owned = owned
    return msg


cdef class DirectMessage:
    """A received message, with the accessors of the binding's own message object."""

    def __dealloc__(self):
        if self.owned and self.ptr != NULL:
            c_message_free(self.ptr)
        self.ptr = NULL

    def data(self):
        """The payload, as a new ``bytes`` object."""
        return PyBytes_FromStringAndSize(<const char *>c_get_data(self.ptr), c_get_length(self.ptr))

    def length(self):
        """The payload's size in bytes."""
        return c_get_length(self.ptr)

    def topic_name(self):
        """The (partition's) topic the message came from."""
        if self._topic is None:
            self._topic = _text(c_get_topic(self.ptr))
        return self._topic

    def partition_key(self):
        """The message key, ``""`` when it has none."""
        if not c_has_key(self.ptr):
            return ""
        return _text(c_get_key(self.ptr))

    def ordering_key(self):
        """The ordering key, ``""`` when it has none."""
        if not c_has_ordering_key(self.ptr):
            return ""
        return _text(c_get_ordering_key(self.ptr))

    def producer_name(self):
        """The name of the producer that published it."""
        return _text(c_get_publisher_name(self.ptr))

    def publish_timestamp(self):
        """Publish time, ms since the epoch."""
        return c_get_publish_time(self.ptr)

    def event_timestamp(self):
        """Event time, ms since the epoch (0 when unset)."""
        return c_get_event_time(self.ptr)

    def redelivery_count(self):
        """How many times the broker delivered it before."""
        return c_get_redelivery_count(self.ptr)

    def properties(self):
        """The message properties, as a new dict."""
        cdef void *props = c_get_properties(self.ptr)
        cdef int i, n = c_map_size(props)
        cdef dict out = {}
        try:
            for i in range(n):
                out[_text(c_map_key(props, i))] = _text(c_map_value(props, i))
        finally:
            c_map_free(props)
        return out

    def serialized_id(self):
        """The message id in the client's serialized form."""
        cdef void *mid = c_get_message_id(self.ptr)
        cdef int length = 0
        cdef void *buf = c_id_serialize(mid, &length)
        c_id_free(mid)
        if buf == NULL:
            raise MemoryError("serializing a message id")
        try:
            return PyBytes_FromStringAndSize(<const char *>buf, length)
        finally:
            free(buf)

    def message_id(self):
        """The binding's MessageId of this message (made once, from its serialized form)."""
        if self._message_id is None:
            self._message_id = _message_id_from_bytes(self.serialized_id())
        return self._message_id

    cpdef tuple position(self):
        """``(ledger, entry, batch index)``: the message's order within its partition."""
        cdef void *mid = c_get_message_id(self.ptr)
        cdef char *text = c_id_str(mid)
        cdef long long ledger = 0, entry = 0
        cdef int partition = 0, batch = 0
        cdef int parsed = 0
        c_id_free(mid)
        if text != NULL:
            # A chunked message's id prints its first chunk, then ";" and its own position.
            if strchr(text, 59) == NULL:
                parsed = sscanf(text, "(%lld,%lld,%d,%d", &ledger, &entry, &partition, &batch)
            free(text)
        if parsed != 4:
            mid_obj = self.message_id()
            return (mid_obj.ledger_id(), mid_obj.entry_id(), mid_obj.batch_index())
        return (ledger, entry, batch)

    def __repr__(self):
        return f"DirectMessage(topic={self.topic_name()!r}, id={self.message_id()})"


cdef void *_handle(object capsule) except NULL:
    cdef void *ptr = PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))
    if ptr == NULL:
        raise ValueError("an empty handle")
    return ptr


cdef class DirectView:
    """A view of one of the binding's objects through the C API.

    Parameters
    ----------
    raw
        The binding's consumer or producer (kept alive; attributes not defined by the
        view are its own).
    capsule
        A capsule holding the address of the C++ object ``raw`` owns.
    """

    def __init__(self, raw, capsule):
        if not _attached:
            raise RuntimeError("the client's C API is not attached")
        self.raw = raw
        self._capsule = capsule
        self.handle = _handle(capsule)

    def __getattr__(self, name):
        return getattr(self.raw, name)


cdef class DirectConsumer(DirectView):
    """A consumer view: receives and acknowledges through the C API."""

    cpdef list batch_receive(self):
        """One batch, as the consumer's batch receive policy bounds it."""
        cdef void *msgs = NULL
        cdef int result
        with nogil:
            result = c_batch_receive(self.handle, &msgs)
        if result != 0:
            _raise(result, "batch_receive")
        cdef DirectBatch batch = DirectBatch.__new__(DirectBatch)
        batch.messages = msgs
        cdef size_t i, n = c_messages_size(msgs)
        cdef list out = [None] * n
        for i in range(n):
            out[i] = _message(c_messages_get(msgs, i), batch, False)
        return out

    def receive(self, int timeout_millis=-1):
        """One message, waiting up to ``timeout_millis`` (forever when negative)."""
        cdef void *msg = NULL
        cdef int result
        cdef int wait = timeout_millis if timeout_millis >= 0 else 2147483647
        with nogil:
            result = c_receive_timeout(self.handle, &msg, wait)
        if result != 0:
            _raise(result, "receive")
        return _message(msg, None, True)

    cpdef acknowledge(self, object msg):
        """Acknowledge a received message (the binding's own messages are passed to it)."""
        if type(msg) is DirectMessage:
            c_ack_async(self.handle, (<DirectMessage>msg).ptr, NULL, NULL)
        else:
            self.raw.acknowledge(msg)

    cpdef negative_acknowledge(self, object msg):
        """Negatively acknowledge a received message, for redelivery after the delay."""
        if type(msg) is DirectMessage:
            c_nack(self.handle, (<DirectMessage>msg).ptr)
        else:
            self.raw.negative_acknowledge(msg)


cdef class DirectProducer(DirectView):
    """A producer view: builds and sends outputs through the C API (``flush_async`` … are the binding's)."""

    cdef void send(self, bytes payload, object source, bint forward_key, bint forward_properties,
                   object extra_properties, object sequence_id) except *:
        cdef void *msg = c_message_create()
        cdef void *src = NULL
        cdef void *props
        cdef int i, n
        cdef const char *data = payload
        c_set_content(msg, data, len(payload))
        if type(source) is DirectMessage:
            src = (<DirectMessage>source).ptr
        if forward_key:
            if src != NULL:
                if c_has_key(src):
                    c_set_key(msg, c_get_key(src))
            else:
                key = source.partition_key()
                if key:
                    c_set_key(msg, (<str>key).encode("utf-8"))
        if forward_properties:
            if src != NULL:
                props = c_get_properties(src)
                n = c_map_size(props)
                for i in range(n):
                    c_set_property(msg, c_map_key(props, i), c_map_value(props, i))
                c_map_free(props)
            else:
                _put_properties(msg, source.properties())
        if extra_properties is not None:
            _put_properties(msg, extra_properties)
        if sequence_id is not None:
            c_set_sequence_id(msg, <int64_t>sequence_id)
        with nogil:
            c_send_async(self.handle, msg, _sent, NULL)
        c_message_free(msg)

    cdef void send_record(self, bytes payload, object key, dict properties, unsigned long long event_time) except *:
        cdef void *msg = c_message_create()
        cdef const char *data = payload
        cdef bytes encoded
        c_set_content(msg, data, len(payload))
        if properties:
            _put_properties(msg, properties)
        if key is not None:
            encoded = (<str>key).encode("utf-8")
            c_set_key(msg, encoded)
        if event_time:
            c_set_event_time(msg, event_time)
        with nogil:
            c_send_async(self.handle, msg, _sent, NULL)
        c_message_free(msg)


def consumer_view(raw, capsule):
    """A :class:`DirectConsumer` over ``raw`` when a handle is given, else ``raw``."""
    if capsule is None or not _attached:
        return raw
    return DirectConsumer(raw, capsule)


def producer_view(raw, capsule):
    """A :class:`DirectProducer` over ``raw`` when a handle is given, else ``raw``."""
    if capsule is None or not _attached:
        return raw
    return DirectProducer(raw, capsule)


def send_record(producer, builder, bytes payload, key, dict properties, event_time):
    """Queue a source's record on ``producer`` (no callback: a flush reports it persisted).

    Through the C API when ``producer`` is a :class:`DirectProducer`, else with one
    ``builder()`` message on the binding's producer.
    """
    if type(producer) is DirectProducer:
        (<DirectProducer>producer).send_record(payload, key, properties, event_time or 0)
        return
    mb = builder()
    mb.content(payload)
    if properties:
        for name, value in properties.items():
            mb.property(name, value)
    if key is not None:
        mb.partition_key(key)
    if event_time:
        mb.event_timestamp(event_time)
    producer.send_async(mb.build(), None)


def input_message_id_property(source):
    """The ``__pfn_input_msg_id__`` value of ``source``: its serialized id in base64."""
    if type(source) is DirectMessage:
        raw = (<DirectMessage>source).serialized_id()
    else:
        raw = source.message_id().serialize()
    return base64.b64encode(raw).decode("ascii")
