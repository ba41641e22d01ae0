# C-level declaration of the compiled Codec, shared by serde.pyx (which implements it)
# and dispatch.pyx (which cimports it and calls decode/encode through the C vtable).
#
# The file is named after the module's full dotted name so that Cython finds it both
# as serde.pyx's own declaration file and for ``cimport engine.hotpath.native.serde``
# while every source stays in ext/ (Cython searches a source's own directory and the
# include path for "<dotted.name>.pxd").
#
# Data: a Codec owns a C int ``kind`` and a reference to the user's SerDe object (or
# None). decode() takes a payload owned by the caller (bytes, or a bytearray or
# memoryview that it copies to bytes) and returns a new Python object; encode() returns
# a new ``bytes`` object owned by the caller. Both run with the GIL held: they create
# Python objects and may call user code.

cdef class Codec:
    cdef public int kind
    cdef public object user

    cpdef object decode(self, object data)
    cpdef bytes encode(self, object value)
