# Shared codec core, included by serde.pyx and dispatch.pyx so that both decode and
# encode payloads with C-level calls and no cross-module cimport.
#
# Data: a message payload arrives as a Python ``bytes`` object owned by the caller
# (the client copied it out of its buffer in ``Message.data()``); we read it through
# its internal buffer pointer without copying and never keep a borrowed pointer past
# the call. Every function here runs with the GIL held: they create Python objects.

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

cdef tuple _IDENTITY_TYPES = (int, float, complex, str)


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


cdef object _identity_encode(object value):
    cdef type typ = type(value)
    if typ is bytes:
        return value
    if typ is str:
        return (<str>value).encode("utf-8")
    if typ in _IDENTITY_TYPES:
        return str(value).encode("utf-8")
    raise TypeError(f"IdentitySerDe cannot serialize object of type {typ.__name__}")


cdef inline object _decode(int kind, object user, object data):
    if type(data) is not bytes:
        data = bytes(data)
    if kind == C_KIND_IDENTITY:
        return _identity_decode(<bytes>data)
    if kind == C_KIND_STRING:
        return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), NULL)
    if kind == C_KIND_BYTES:
        return data
    if kind == C_KIND_JSON:
        return _orjson.loads(data)
    if kind == C_KIND_PICKLE:
        return _pickle.loads(data)
    return user.deserialize(data)


cdef inline bytes _encode(int kind, object user, object value):
    cdef type typ
    if kind == C_KIND_IDENTITY:
        return _identity_encode(value)
    typ = type(value)
    if kind == C_KIND_STRING:
        if typ is str:
            return (<str>value).encode("utf-8")
        if typ is bytes:
            return value
        raise TypeError(f"string SerDe cannot serialize object of type {typ.__name__}")
    if kind == C_KIND_BYTES:
        if typ is bytes:
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if typ is str:
            return (<str>value).encode("utf-8")
        raise TypeError(f"bytes SerDe cannot serialize object of type {typ.__name__}")
    if kind == C_KIND_JSON:
        if typ is bytes:
            return value
        return _orjson.dumps(value)
    if kind == C_KIND_PICKLE:
        return _pickle.dumps(value)
    return bytes(user.serialize(value))
