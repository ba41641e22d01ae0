# cython: language_level=3, boundscheck=False, wraparound=False
# Payload codecs (compiled twin of engine/hotpath/serde.py).
#
# Data: ``bytes`` payloads in, Python values out, and back. A Codec holds only its
# kind (a C int) and, for user SerDes, a reference to the user's object. No memory
# is shared with the client; everything runs under the GIL.

include "codec_core.pxi"

KIND_BYTES = C_KIND_BYTES
KIND_STRING = C_KIND_STRING
KIND_JSON = C_KIND_JSON
KIND_PICKLE = C_KIND_PICKLE
KIND_IDENTITY = C_KIND_IDENTITY
KIND_USER = C_KIND_USER

_KIND_NAMES = ("bytes", "string", "json", "pickle", "identity", "user")


def identity_decode(data):
    """Decode as Apache's IdentitySerDe does: int, float, complex, str, else bytes."""
    if type(data) is not bytes:
        data = bytes(data)
    return _identity_decode(<bytes>data)


def identity_encode(value):
    """Encode as Apache's IdentitySerDe does: numbers and str as UTF-8 text, bytes as is."""
    return _identity_encode(value)


cdef class Codec:
    """Decode and encode message payloads of one kind (see engine.hotpath.serde.Codec)."""

    cdef public int kind
    cdef public object user

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

    cpdef object decode(self, data):
        """Turn a payload into the value handed to the function."""
        return _decode(self.kind, self.user, data)

    cpdef bytes encode(self, value):
        """Turn a function result into a payload."""
        return _encode(self.kind, self.user, value)
