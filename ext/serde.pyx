# cython: language_level=3, boundscheck=False, wraparound=False
# Payload codecs (compiled twin of engine/hotpath/serde.py); Codec is declared in
# engine.hotpath.native.serde.pxd so that dispatch.pyx calls it at C level.
#
# Data: a message payload arrives as a Python ``bytes`` object owned by the caller (the
# client copied it out of its buffer in ``Message.data()``; a bytearray or memoryview is
# first copied to a new ``bytes``). We read it through its internal buffer pointer
# without copying and never keep a borrowed pointer past the call. Results are new
# Python objects owned by the caller. A Codec holds only its kind (a C int) and, for
# user SerDes, a reference to the user's object. No memory is shared with the client;
# everything runs under the GIL (these functions create Python objects and call user
# SerDes).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
import pickle as _pickle
import orjson as _orjson

DEF C_KIND_BYTES = 0
DEF C_KIND_STRING = 1
DEF C_KIND_JSON = 2
DEF C_KIND_PICKLE = 3
DEF C_KIND_IDENTITY = 4
DEF C_KIND_USER = 5

KIND_BYTES = C_KIND_BYTES
KIND_STRING = C_KIND_STRING
KIND_JSON = C_KIND_JSON
KIND_PICKLE = C_KIND_PICKLE
KIND_IDENTITY = C_KIND_IDENTITY
KIND_USER = C_KIND_USER

_KIND_NAMES = ("bytes", "string", "json", "pickle", "identity", "user")
_BYTES_LIKE_NAMES = "bytes, bytearray or memoryview"

cdef tuple _IDENTITY_TYPES = (int, float, complex, str)


cdef bytes _as_bytes(object data):
    # The payload as bytes: a bytearray or memoryview is copied, anything else refused.
    if type(data) is bytes:
        return <bytes>data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"cannot decode a payload of type {type(data).__name__}: expected {_BYTES_LIKE_NAMES}")


cdef bytes _user_payload(object user, object result):
    # What a user SerDe's serialize() returned, as bytes (bytes-like only).
    if type(result) is bytes:
        return <bytes>result
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    raise TypeError(
        f"{type(user).__name__}.serialize returned {type(result).__name__}: expected {_BYTES_LIKE_NAMES}"
    )


cdef inline bint _numeric_char(unsigned char c) noexcept:
    # What int(), float() and complex() may accept in ASCII: digits, + - . _ ( ),
    # e E j J, the letters of inf/infinity/nan, and white space or control characters.
    if c <= 32 or (c >= 48 and c <= 57):
        return True
    if c == 43 or c == 45 or c == 46 or c == 95 or c == 40 or c == 41:
        return True
    c = c | 0x20
    return (c == 101 or c == 106 or c == 105 or c == 110 or c == 102
            or c == 97 or c == 116 or c == 121)   # e j i n f a t y


cdef inline bint _may_be_number(const unsigned char* p, Py_ssize_t n) noexcept:
    # Stops at the first ASCII byte no number can contain (the usual case for text,
    # a few bytes in). Non-ASCII bytes do not settle it: int() takes Unicode digits
    # and spaces. Without such a byte, an all-ASCII text still needs a digit, 'j',
    # "inf" or "nan" to be worth the full trial.
    cdef Py_ssize_t i
    cdef unsigned char c, c1, c2
    cdef bint maybe = False
    cdef bint ascii = True
    for i in range(n):
        c = p[i]
        if c >= 0x80:
            ascii = False
            continue
        if not _numeric_char(c):
            return False
        if (c >= 48 and c <= 57) or c == 106 or c == 74:   # 0-9, j, J
            maybe = True
        elif not maybe and i + 2 < n:
            c = c | 0x20
            c1 = p[i + 1] | 0x20
            c2 = p[i + 2] | 0x20
            if (c == 105 and c1 == 110 and c2 == 102) or (c == 110 and c1 == 97 and c2 == 110):
                maybe = True   # "inf" / "nan", any case
    return maybe or not ascii


cdef object _identity_decode(bytes data):
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    try:
        text = PyUnicode_DecodeUTF8(p, n, NULL)
    except UnicodeDecodeError:
        return data
    if not _may_be_number(<const unsigned char*>p, n):
        return text
    for typ in (int, float, complex):
        try:
            return typ(text)
        except (ValueError, TypeError):
            pass
    return text


cdef bytes _identity_encode(object value):
    cdef type typ = type(value)
    if typ is bytes:
        return <bytes>value
    if typ is str:
        return (<str>value).encode("utf-8")
    if typ in _IDENTITY_TYPES:
        return str(value).encode("utf-8")
    raise TypeError(f"IdentitySerDe cannot serialize object of type {typ.__name__}")


def identity_decode(data):
    """Decode as Apache's IdentitySerDe does: int, float, complex, str, else bytes."""
    return _identity_decode(_as_bytes(data))


def identity_encode(value):
    """Encode as Apache's IdentitySerDe does: numbers and str as UTF-8 text, bytes as is."""
    return _identity_encode(value)


cdef class Codec:
    """Decode and encode message payloads of one kind (see engine.hotpath.serde.Codec)."""

    def __init__(self, int kind, user=None):
        if not 0 <= kind <= C_KIND_USER:
            raise ValueError(f"unknown codec kind {kind!r}")
        if kind == C_KIND_USER and user is None:
            raise ValueError("a user codec needs a SerDe object")
        self.kind = kind
        self.user = user

    def __repr__(self):
        if self.kind == C_KIND_USER:
            return f"Codec(user={type(self.user).__name__})"
        return f"Codec({_KIND_NAMES[self.kind]})"

    cpdef object decode(self, object data):
        """Turn a payload into the value handed to the function.

        ``bytearray`` and ``memoryview`` payloads are copied to ``bytes`` first; any
        other type raises ``TypeError``.
        """
        cdef int kind = self.kind
        cdef bytes payload = <bytes>data if type(data) is bytes else _as_bytes(data)
        if kind == C_KIND_IDENTITY:
            return _identity_decode(payload)
        if kind == C_KIND_STRING:
            return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload), NULL)
        if kind == C_KIND_BYTES:
            return payload
        if kind == C_KIND_JSON:
            return _orjson.loads(payload)
        if kind == C_KIND_PICKLE:
            return _pickle.loads(payload)
        return self.user.deserialize(payload)

    cpdef bytes encode(self, object value):
        """Turn a function result into a payload."""
        cdef int kind = self.kind
        cdef type typ
        if kind == C_KIND_IDENTITY:
            return _identity_encode(value)
        typ = type(value)
        if kind == C_KIND_STRING:
            if typ is str:
                return (<str>value).encode("utf-8")
            if typ is bytes:
                return <bytes>value
            raise TypeError(f"string SerDe cannot serialize object of type {typ.__name__}")
        if kind == C_KIND_BYTES:
            if typ is bytes:
                return <bytes>value
            if isinstance(value, (bytearray, memoryview)):
                return bytes(value)
            if typ is str:
                return (<str>value).encode("utf-8")
            raise TypeError(f"bytes SerDe cannot serialize object of type {typ.__name__}")
        if kind == C_KIND_JSON:
            if typ is bytes:
                return <bytes>value
            return _orjson.dumps(value)
        if kind == C_KIND_PICKLE:
            return _pickle.dumps(value)
        return _user_payload(self.user, self.user.serialize(value))
