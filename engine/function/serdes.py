"""SerDe classes and the mapping from SerDe names and schema types to hot-path codecs.

Apache's names (``serde.IdentitySerDe``, ``pulsar.functions.serde.PickleSerDe`` …),
the classes below, and the schema types ``BYTES``/``STRING``/``JSON`` all map to a
built-in codec that the compiled hot path runs without calling Python per message;
any other name is imported from the function's code and called per message.
"""

from __future__ import annotations

from typing import Any

import orjson
from pulsar.functions.serde import IdentitySerDe, PickleSerDe, SerDe

from engine.function.errors import FunctionLoadError
from engine.function.loader import import_object
from engine.hotpath import HotPath
from engine.hotpath.protocols import Codec

__all__ = [
    "DEFAULT_SERDE",
    "BytesSerDe",
    "Float32SerDe",
    "Float64SerDe",
    "Int32SerDe",
    "Int64SerDe",
    "JsonSerDe",
    "NumericSerDe",
    "StringSerDe",
    "builtin_kind",
    "codec_for",
]

#: Apache's default SerDe for Python functions.
DEFAULT_SERDE = "serde.IdentitySerDe"


class BytesSerDe(SerDe):
    """Payloads as ``bytes``, unchanged."""

    def serialize(self, input: Any) -> bytes:
        return bytes(input)

    def deserialize(self, input_bytes: bytes) -> bytes:
        return input_bytes


class StringSerDe(SerDe):
    """Payloads as UTF-8 text."""

    def serialize(self, input: Any) -> bytes:
        return str(input).encode("utf-8")

    def deserialize(self, input_bytes: bytes) -> str:
        return input_bytes.decode("utf-8")


class JsonSerDe(SerDe):
    """Payloads as JSON documents."""

    def serialize(self, input: Any) -> bytes:
        return orjson.dumps(input)

    def deserialize(self, input_bytes: bytes) -> Any:
        return orjson.loads(input_bytes)


class NumericSerDe(SerDe):
    """One fixed-width little-endian number per payload (subclasses fix the type).

    A batch function (``process_batch``) whose inputs all use the same numeric SerDe gets
    the whole batch decoded into one numpy array in one step (:meth:`decode_many`).
    """

    #: numpy dtype of one payload, little-endian.
    dtype = "<f8"

    @property
    def width(self) -> int:
        """Bytes per payload."""
        return int(self.dtype[-1])

    def serialize(self, input: Any) -> bytes:
        import numpy as np

        value = np.asarray(input, dtype=self.dtype)
        if value.ndim != 0:
            raise TypeError(
                f"{type(self).__name__}: expected one number, got an array of shape {value.shape}"
            )
        return value.tobytes()

    def deserialize(self, input_bytes: bytes) -> Any:
        import numpy as np

        if len(input_bytes) != self.width:
            raise ValueError(f"{type(self).__name__}: expected {self.width} bytes, got {len(input_bytes)}")
        return np.frombuffer(input_bytes, dtype=self.dtype)[0].item()

    def decode_many(self, data: bytes) -> Any:
        """All payloads of a batch, concatenated, as one numpy array."""
        import numpy as np

        return np.frombuffer(data, dtype=self.dtype)


class Float64SerDe(NumericSerDe):
    """64-bit floats."""

    dtype = "<f8"


class Float32SerDe(NumericSerDe):
    """32-bit floats."""

    dtype = "<f4"


class Int64SerDe(NumericSerDe):
    """64-bit signed integers."""

    dtype = "<i8"


class Int32SerDe(NumericSerDe):
    """32-bit signed integers."""

    dtype = "<i4"


_NAMES = {
    "bytes": "KIND_BYTES",
    "string": "KIND_STRING",
    "json": "KIND_JSON",
    "pickle": "KIND_PICKLE",
    "identity": "KIND_IDENTITY",
}
_BY_CLASS = {
    IdentitySerDe: "KIND_IDENTITY",
    PickleSerDe: "KIND_PICKLE",
    BytesSerDe: "KIND_BYTES",
    StringSerDe: "KIND_STRING",
    JsonSerDe: "KIND_JSON",
}


def builtin_kind(name: str) -> str | None:
    """The codec kind attribute for a built-in SerDe name or schema type, else ``None``."""
    short = name.rsplit(".", 1)[-1].lower()
    if short.endswith("serde"):
        short = short[: -len("serde")]
    elif short.endswith("schema"):
        short = short[: -len("schema")]
    kind = _NAMES.get(short)
    if kind is None:
        return None
    # Only names that really refer to a built-in class: bare aliases, Apache's, or ours.
    module = name.rsplit(".", 1)[0] if "." in name else ""
    if module in ("", "serde", "pulsar.functions.serde", "engine.function.serdes", "magnetar"):
        return kind
    return None


def codec_for(hot: HotPath, serde_class_name: str | None, schema_type: str | None = None) -> Codec:
    """The codec of ``hot`` for a SerDe class name or schema type (default IdentitySerDe)."""
    serde = hot.serde
    if schema_type:
        kind = _NAMES.get(schema_type.lower())
        if kind is None or kind in ("KIND_PICKLE", "KIND_IDENTITY"):
            raise FunctionLoadError(f"schemaType {schema_type!r}: expected BYTES, STRING or JSON")
        return serde.Codec(getattr(serde, kind))
    name = serde_class_name or DEFAULT_SERDE
    kind = builtin_kind(name)
    if kind is not None:
        return serde.Codec(getattr(serde, kind))
    cls = import_object(name)
    if not isinstance(cls, type):
        raise FunctionLoadError(f"serde {name!r}: expected a SerDe class, found {type(cls).__name__}")
    if cls in _BY_CLASS:
        return serde.Codec(getattr(serde, _BY_CLASS[cls]))
    try:
        obj = cls()
    except Exception as exc:
        raise FunctionLoadError(f"serde {name!r}: could not create an instance: {type(exc).__name__}: {exc}")
    if not (callable(getattr(obj, "serialize", None)) and callable(getattr(obj, "deserialize", None))):
        raise FunctionLoadError(f"serde {name!r}: needs serialize() and deserialize() methods")
    return serde.Codec(serde.KIND_USER, obj)
