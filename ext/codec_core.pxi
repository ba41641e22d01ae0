# Shared codec core, included by serde.pyx and dispatch.pyx so that both decode and
# encode payloads with C-level calls and no cross-module cimport.
#
# Data: a message payload arrives as a Python ``bytes`` object owned by the caller
# (the client copied it out of its buffer in ``Message.data()``); we read it through
# its internal buffer pointer without copying and never keep a borrowed pointer past
# the call. Every function here runs with the GIL held: they create Python objects.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII, PyUnicode_DecodeUTF8
import pickle as _pickle
import orjson as _orjson

DEF C_KIND_BYTES = 0
DEF C_KIND_STRING = 1
DEF C_KIND_JSON = 2
DEF C_KIND_PICKLE = 3
DEF C_KIND_IDENTITY = 4
DEF C_KIND_USER = 5

cdef tuple _IDENTITY_TYPES = (int, float, complex, str)


cdef inline bint _ascii_may_be_number(const unsigned char* p, Py_ssize_t n, bint* is_ascii) noexcept:
    # One pass: note any non-ASCII byte, any digit or 'j', any "inf"/"nan".
    cdef Py_ssize_t i
    cdef unsigned char c, c1, c2
    cdef bint maybe = False
    is_ascii[0] = True
    for i in range(n):
        c = p[i]
        if c >= 0x80:
            is_ascii[0] = False
            return True
        if (c >= 48 and c <= 57) or c == 106 or c == 74:   # 0-9, j, J
            maybe = True
        elif i + 2 < n:
            c = c | 0x20
            c1 = p[i + 1] | 0x20
            c2 = p[i + 2] | 0x20
            if (c == 105 and c1 == 110 and c2 == 102) or (c == 110 and c1 == 97 and c2 == 110):
                maybe = True   # "inf" / "nan", any case
    return maybe


cdef object _identity_decode(bytes data):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef bint is_ascii
    if not _ascii_may_be_number(p, n, &is_ascii):
        return PyUnicode_DecodeASCII(<const char*>p, n, NULL)
    try:
        text = PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
    except UnicodeDecodeError:
        return data
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
