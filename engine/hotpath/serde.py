"""Payload codecs: bytes on the wire to Python values and back (pure-Python twin).

A :class:`Codec` is built once per topic from a SerDe class name or schema type
(see :mod:`engine.function.serdes`) and then called once per message by the
dispatcher. The compiled twin is ``ext/serde.pyx``; both must behave identically,
which ``tests/unit/test_hotpath_differential.py`` checks.

Kinds
-----
``KIND_BYTES``     payload as ``bytes``
``KIND_STRING``    UTF-8 text
``KIND_JSON``      JSON through orjson
``KIND_PICKLE``    pickle
``KIND_IDENTITY``  Apache's ``IdentitySerDe``: ``int``, then ``float``, then
                   ``complex``, then ``str``, else the raw bytes
``KIND_USER``      a user SerDe object with ``serialize``/``deserialize``
"""

from __future__ import annotations

import pickle
import re
from typing import Any

import orjson

from engine.hotpath import protocols

__all__ = [
    "KIND_BYTES",
    "KIND_IDENTITY",
    "KIND_JSON",
    "KIND_PICKLE",
    "KIND_STRING",
    "KIND_USER",
    "Codec",
    "identity_decode",
    "identity_encode",
]

KIND_BYTES = 0
KIND_STRING = 1
KIND_JSON = 2
KIND_PICKLE = 3
KIND_IDENTITY = 4
KIND_USER = 5

_KIND_NAMES = ("bytes", "string", "json", "pickle", "identity", "user")
_IDENTITY_TYPES = (int, float, complex, str)
_BYTES_LIKE = (bytes, bytearray, memoryview)
_BYTES_LIKE_NAMES = "bytes, bytearray or memoryview"


def _as_bytes(data: Any) -> bytes:
    """``data`` as ``bytes``: a bytes-like payload is copied, anything else refused."""
    if type(data) is bytes:
        return data
    if isinstance(data, _BYTES_LIKE):
        return bytes(data)
    raise TypeError(f"cannot decode a payload of type {type(data).__name__}: expected {_BYTES_LIKE_NAMES}")


def _user_payload(user: Any, result: Any) -> bytes:
    """What a user SerDe's ``serialize`` returned, as ``bytes`` (bytes-like only)."""
    if type(result) is bytes:
        return result
    if isinstance(result, _BYTES_LIKE):
        return bytes(result)
    raise TypeError(
        f"{type(user).__name__}.serialize returned {type(result).__name__}: expected {_BYTES_LIKE_NAMES}"
    )


# Characters int(), float() and complex() can accept in ASCII text: digits, signs, the
# decimal point, underscores, parentheses, exponent and imaginary markers, the letters of
# "inf"/"infinity"/"nan", and white space (control characters included, conservatively).
_NOT_NUMERIC = re.compile(r"[^0-9+\-._()eEjJiInNfFaAtTyY\x00-\x20\x80-\U0010ffff]")


def _may_be_number(text: str) -> bool:
    """False when ``text`` certainly fails ``int``, ``float`` and ``complex``.

    An ASCII character none of them accepts settles it (Unicode digits and spaces do
    not: ``int`` takes them); so does an ASCII text with nothing numeric in it (no digit,
    ``j``, ``inf`` or ``nan``). This saves three raised exceptions on ordinary text.
    """
    if _NOT_NUMERIC.search(text) is not None:
        return False
    if not text.isascii():
        return True
    for ch in text:
        if "0" <= ch <= "9" or ch == "j" or ch == "J":
            return True
    lowered = text.lower()
    return "inf" in lowered or "nan" in lowered


def identity_decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode as Apache's IdentitySerDe does: int, float, complex, str, else bytes."""
    data = _as_bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    if not _may_be_number(text):
        return text
    for typ in (int, float, complex):
        try:
            return typ(text)
        except (ValueError, TypeError):
            pass
    return text


def identity_encode(value: Any) -> bytes:
    """Encode as Apache's IdentitySerDe does: numbers and str as UTF-8 text, bytes as is."""
    typ = type(value)
    if typ is bytes:
        return value
    if typ in _IDENTITY_TYPES:
        return str(value).encode("utf-8")
    raise TypeError(f"IdentitySerDe cannot serialize object of type {typ.__name__}")


class Codec(protocols.Codec):
    """Decode and encode message payloads of one kind.

    Parameters
    ----------
    kind
        One of the ``KIND_*`` constants.
    user
        For ``KIND_USER``: an object with ``serialize(value)`` and
        ``deserialize(data)``; ignored otherwise.
    """

    __slots__ = ("kind", "user")

    def __init__(self, kind: int, user: Any = None) -> None:
        if not 0 <= kind <= KIND_USER:
            raise ValueError(f"unknown codec kind {kind!r}")
        if kind == KIND_USER and user is None:
            raise ValueError("a user codec needs a SerDe object")
        self.kind = kind
        self.user = user

    def __repr__(self) -> str:
        if self.kind == KIND_USER:
            return f"Codec(user={type(self.user).__name__})"
        return f"Codec({_KIND_NAMES[self.kind]})"

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """Turn a payload into the value handed to the function.

        ``bytearray`` and ``memoryview`` payloads are copied to ``bytes`` first; any
        other type raises ``TypeError``.
        """
        if type(data) is not bytes:
            data = _as_bytes(data)
        kind = self.kind
        if kind == KIND_IDENTITY:
            return identity_decode(data)
        if kind == KIND_STRING:
            return data.decode("utf-8")
        if kind == KIND_BYTES:
            return data
        if kind == KIND_JSON:
            return orjson.loads(data)
        if kind == KIND_PICKLE:
            return pickle.loads(data)
        return self.user.deserialize(data)

    def encode(self, value: Any) -> bytes:
        """Turn a function result into a payload."""
        kind = self.kind
        if kind == KIND_IDENTITY:
            return identity_encode(value)
        if kind == KIND_STRING:
            if type(value) is str:
                return value.encode("utf-8")
            if type(value) is bytes:
                return value
            raise TypeError(f"string SerDe cannot serialize object of type {type(value).__name__}")
        if kind == KIND_BYTES:
            if type(value) is bytes:
                return value
            if isinstance(value, (bytearray, memoryview)):
                return bytes(value)
            if type(value) is str:
                return value.encode("utf-8")
            raise TypeError(f"bytes SerDe cannot serialize object of type {type(value).__name__}")
        if kind == KIND_JSON:
            if type(value) is bytes:
                return value
            return orjson.dumps(value)
        if kind == KIND_PICKLE:
            return pickle.dumps(value)
        return _user_payload(self.user, self.user.serialize(value))
