"""Schemas of a function's inputs and output, through pulsar-client's own ``pulsar.schema``.

A topic's schema type (``schemaType``, ``inputSpecs.{topic}.schemaType``,
``customSchemaInputs``, ``outputSchemaType``, ``customSchemaOutputs``) resolves to a
:class:`TopicSchema`: the ``pulsar.schema.Schema`` the instance registers with the broker
when it subscribes or creates the output producer, and the hot-path codec that decodes
and encodes each payload.

* ``STRING`` and ``BYTES`` keep the built-in native codecs: registering the schema costs
  nothing per message.
* ``JSON`` with a ``pulsar.schema.Record`` class (``inputTypeClassName`` /
  ``outputTypeClassName``) uses ``JsonSchema``; without one it stays schema-less JSON
  decoded to ``dict``/``list`` by the native codec, as before.
* ``AVRO`` uses ``AvroSchema`` with the Record class (the client's bundled fastavro).
* ``INT8``, ``INT16``, ``INT32``, ``INT64``, ``FLOAT``, ``DOUBLE``, ``BOOLEAN`` use
  :class:`PrimitiveSchema`, Pulsar's big-endian encodings of those types (``BOOLEAN``
  is not registered: the client has no such schema type).
* ``KEY_VALUE`` uses :class:`KeyValueSchema` (INLINE encoding): its key and value schema
  types come from the schema properties ``key.schema.type`` / ``value.schema.type``
  (default ``STRING``), and the Record class, if any, is the value's. It is not
  registered: the client cannot build a KEY_VALUE SchemaInfo.
* Any other name is a custom ``pulsar.schema.Schema`` class from the function's code,
  created as Apache's Python instance creates it (with no argument, the Record class or
  the schema properties, or both).
"""

from __future__ import annotations

import inspect
import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from pulsar.schema import AvroSchema, BytesSchema, JsonSchema, Record, Schema, StringSchema

from engine.broker.adapter import SchemaInfo, SchemaType
from engine.function.errors import FunctionLoadError
from engine.function.loader import import_object
from engine.function.serdes import codec_for
from engine.hotpath import HotPath
from engine.hotpath.protocols import Codec

if TYPE_CHECKING:
    from engine.config.validation import FunctionSpec

__all__ = [
    "PRIMITIVE_TYPES",
    "SCHEMA_TYPES",
    "KeyValue",
    "KeyValueSchema",
    "PrimitiveSchema",
    "TopicSchema",
    "extra_output_schemas",
    "input_schemas",
    "is_builtin_schema_type",
    "output_schema",
    "subscription_schema",
    "topic_schema",
    "with_writer_schema",
]

log = logging.getLogger(__name__)

#: Pulsar's primitive schema types -> (struct format, Python type).
PRIMITIVE_TYPES: dict[str, tuple[str, type]] = {
    "INT8": (">b", int),
    "INT16": (">h", int),
    "INT32": (">i", int),
    "INT64": (">q", int),
    "FLOAT": (">f", float),
    "DOUBLE": (">d", float),
    "BOOLEAN": (">?", bool),
}

#: Schema types resolved here (any other value must name a custom Schema class).
SCHEMA_TYPES = ("BYTES", "STRING", "JSON", "AVRO", "KEY_VALUE", *PRIMITIVE_TYPES)


def is_builtin_schema_type(schema_type: str) -> bool:
    """True when ``schema_type`` is one of :data:`SCHEMA_TYPES` (any case)."""
    return schema_type.upper() in SCHEMA_TYPES


@dataclass(frozen=True)
class TopicSchema:
    """What one topic's schema type resolves to.

    Attributes
    ----------
    schema
        Registered with the broker by the consumer or producer; ``None`` registers nothing
        (bytes, or schema-less JSON).
    codec
        The hot-path codec for each payload.
    """

    schema: Schema | None
    codec: Codec
    #: The ``pulsar.schema.Record`` class of a JSON, AVRO or KEY_VALUE value, if any.
    record: type | None = None

    @property
    def registered(self) -> Schema | None:
        """The schema to register with the broker, or ``None``."""
        if self.schema is None or not getattr(self.schema, "registrable", True):
            return None
        return self.schema


class PrimitiveSchema(Schema):
    """One of Pulsar's primitive schemas (``INT32``, ``DOUBLE``, …), encoded big-endian as Pulsar does.

    ``BOOLEAN`` is encoded too, but the client has no schema type to register it with:
    :attr:`registrable` is false for it.
    """

    def __init__(self, schema_type: str) -> None:
        name = schema_type.upper()
        if name not in PRIMITIVE_TYPES:
            raise ValueError(f"{schema_type!r}: expected one of {', '.join(PRIMITIVE_TYPES)}")
        fmt, typ = PRIMITIVE_TYPES[name]
        self._struct = struct.Struct(fmt)
        self._type = typ
        self._name = name
        pulsar_type = getattr(SchemaType, name, None)
        #: Whether the client can register this type with the broker.
        self.registrable = pulsar_type is not None
        self._record_cls = typ
        # A primitive schema has empty schema data, as Pulsar's own primitive schemas.
        self._schema_info = SchemaInfo(pulsar_type or SchemaType.BYTES, name, "")

    def encode(self, obj: Any) -> bytes:
        typ = self._type
        ok = (
            isinstance(obj, (int, float)) and not isinstance(obj, bool)
            if typ is float
            else isinstance(obj, int) and not isinstance(obj, bool)
            if typ is int
            else isinstance(obj, bool)
        )
        if not ok:
            raise TypeError(f"{self._name} schema cannot encode {type(obj).__name__}")
        try:
            return self._struct.pack(obj)
        except struct.error as exc:
            raise ValueError(f"{self._name} schema cannot encode {obj!r}: {exc}") from None

    def decode(self, data: bytes) -> Any:
        if len(data) != self._struct.size:
            raise ValueError(f"{self._name} schema: expected {self._struct.size} bytes, got {len(data)}")
        return self._struct.unpack(data)[0]


class KeyValue(NamedTuple):
    """A key and a value, as a KEY_VALUE schema carries them."""

    key: Any
    value: Any


class KeyValueSchema(Schema):
    """Pulsar's KEY_VALUE schema, INLINE encoding: ``len(key) key len(value) value``, lengths big-endian.

    Decodes to a :class:`KeyValue`; encodes a :class:`KeyValue` or a ``(key, value)`` pair.
    """

    def __init__(self, key_schema: Schema, value_schema: Schema) -> None:
        self.key_schema = key_schema
        self.value_schema = value_schema
        # The client cannot build a KEY_VALUE SchemaInfo (it takes neither the binary schema
        # data nor the properties naming the parts): the schema decodes and encodes, and
        # nothing is registered.
        self.registrable = False
        self._record_cls = KeyValue
        self._schema_info = SchemaInfo(SchemaType.BYTES, "KeyValue", "")

    def encode(self, obj: Any) -> bytes:
        try:
            key, value = obj
        except (TypeError, ValueError):
            raise TypeError(
                f"KEY_VALUE schema: expected a (key, value) pair, got {type(obj).__name__}"
            ) from None
        k = self.key_schema.encode(key)
        v = self.value_schema.encode(value)
        return b"".join((len(k).to_bytes(4, "big"), k, len(v).to_bytes(4, "big"), v))

    def decode(self, data: bytes) -> KeyValue:
        view = memoryview(data)
        if len(view) < 8:
            raise ValueError(f"KEY_VALUE schema: a payload of {len(view)} bytes is too short")
        klen = int.from_bytes(view[:4], "big", signed=True)
        key_end = 4 + max(klen, 0)
        vlen = int.from_bytes(view[key_end : key_end + 4], "big", signed=True)
        if key_end + 4 + max(vlen, 0) != len(view):
            raise ValueError("KEY_VALUE schema: the lengths do not match the payload")
        key = self.key_schema.decode(bytes(view[4:key_end])) if klen >= 0 else None
        value = self.value_schema.decode(bytes(view[key_end + 4 :])) if vlen >= 0 else None
        return KeyValue(key, value)


class _SchemaSerDe:
    """A schema as the SerDe of a hot-path user codec (called once per message)."""

    __slots__ = ("schema",)

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def serialize(self, value: Any) -> bytes:
        return self.schema.encode(value)

    def deserialize(self, data: bytes) -> Any:
        return self.schema.decode(data)


def _record_class(type_class_name: str | None, where: str) -> type | None:
    if not type_class_name:
        return None
    cls = import_object(type_class_name)
    if not (isinstance(cls, type) and issubclass(cls, Record)):
        raise FunctionLoadError(f"{where} {type_class_name!r}: expected a pulsar.schema.Record subclass")
    return cls


def _plain_schema(name: str, record: type | None, where: str) -> Schema:
    """The schema of a built-in type other than KEY_VALUE (for a KeyValue's parts too)."""
    if name == "STRING":
        return StringSchema()
    if name == "BYTES":
        return BytesSchema()
    if name in PRIMITIVE_TYPES:
        return PrimitiveSchema(name)
    if record is None:
        raise FunctionLoadError(
            f"{where}: schema type {name} needs a pulsar.schema.Record class (typeClassName)"
        )
    if name == "JSON":
        return JsonSchema(record)
    if name == "AVRO":
        return AvroSchema(record)
    raise FunctionLoadError(f"{where}: schema type {name!r} cannot be a KeyValue part")


def _custom_schema(name: str, record: type | None, properties: dict[str, str]) -> Schema:
    cls = import_object(name)
    if not (isinstance(cls, type) and issubclass(cls, Schema)):
        raise FunctionLoadError(f"schema type {name!r}: expected a pulsar.schema.Schema subclass")
    try:
        params = len(inspect.signature(cls).parameters) + 1  # counting self, as Apache does
    except (TypeError, ValueError):
        params = 1
    try:
        if params <= 1:
            return cls()
        if params == 2:
            return cls(record) if record is not None else cls(properties)
        return cls(record, properties)
    except Exception as exc:
        raise FunctionLoadError(
            f"schema type {name!r}: could not create it: {type(exc).__name__}: {exc}"
        ) from exc


def topic_schema(
    hot: HotPath,
    schema_type: str,
    type_class_name: str | None = None,
    schema_properties: dict[str, str] | None = None,
    where: str = "schemaType",
) -> TopicSchema:
    """Resolve one topic's schema type (see the module docstring); raises :class:`FunctionLoadError`."""
    serde = hot.serde
    name = schema_type.upper()
    props = dict(schema_properties or {})
    record = _record_class(type_class_name, f"{where}: typeClassName")
    if name == "STRING":
        return TopicSchema(StringSchema(), serde.Codec(serde.KIND_STRING))
    if name == "BYTES":
        return TopicSchema(None, serde.Codec(serde.KIND_BYTES))
    if name == "JSON" and record is None:
        return TopicSchema(None, serde.Codec(serde.KIND_JSON))
    if name == "KEY_VALUE":
        key_type = props.get("key.schema.type", "STRING").upper()
        value_type = props.get("value.schema.type", "STRING").upper()
        schema: Schema = KeyValueSchema(
            _plain_schema(key_type, None, f"{where}: key.schema.type"),
            _plain_schema(value_type, record, f"{where}: value.schema.type"),
        )
    elif name in SCHEMA_TYPES:
        schema = _plain_schema(name, record, where)
    else:
        schema = _custom_schema(schema_type, record, props)
    return TopicSchema(schema, serde.Codec(serde.KIND_USER, _SchemaSerDe(schema)), record)


class _AvroWriterSerDe:
    """Decode Avro written with another (compatible) schema: Avro resolves writer fields to the reader's."""

    __slots__ = ("_read_schema", "_record", "_schema", "_writer")

    def __init__(self, schema: Schema, record: type, writer: dict[str, Any]) -> None:
        import fastavro

        reader = record.schema()  # type: ignore[attr-defined]
        self._schema = schema
        self._record = record
        self._read_schema = fastavro.parse_schema(reader)
        self._writer = fastavro.parse_schema({**writer, "name": reader["name"]})

    def serialize(self, value: Any) -> bytes:
        return self._schema.encode(value)

    def deserialize(self, data: bytes) -> Any:
        import io

        import fastavro

        fields: Any = fastavro.schemaless_reader(io.BytesIO(data), self._writer, self._read_schema)
        return self._record(**fields)


def with_writer_schema(hot: HotPath, resolved: TopicSchema, writer_definition: str) -> TopicSchema:
    """``resolved`` decoding AVRO written with ``writer_definition`` (JSON), if it differs from its own."""
    import json

    schema, record = resolved.schema, resolved.record
    if schema is None or record is None or schema.schema_info().schema_type() != SchemaType.AVRO:
        return resolved
    writer = json.loads(writer_definition)
    if writer == record.schema():  # type: ignore[attr-defined]
        return resolved
    serde = hot.serde
    return TopicSchema(schema, serde.Codec(serde.KIND_USER, _AvroWriterSerDe(schema, record, writer)), record)


def _codec_or_schema(
    hot: HotPath,
    serde_class_name: str | None,
    schema_type: str | None,
    type_class_name: str | None,
    schema_properties: dict[str, str] | None,
    where: str,
) -> TopicSchema:
    if not schema_type:
        return TopicSchema(None, codec_for(hot, serde_class_name))
    return topic_schema(hot, schema_type, type_class_name, schema_properties, where)


def input_schemas(hot: HotPath, spec: FunctionSpec) -> dict[str, TopicSchema]:
    """Every input's :class:`TopicSchema`, by topic (or pattern), with ``inputTypeClassName``'s Record."""
    return {
        i.topic: _codec_or_schema(
            hot,
            i.serde_class_name,
            i.schema_type,
            spec.config.input_type_class_name,
            i.schema_properties,
            f"inputSpecs[{i.topic}].schemaType",
        )
        for i in spec.inputs
    }


def output_schema(hot: HotPath, spec: FunctionSpec) -> TopicSchema | None:
    """The output topic's :class:`TopicSchema` (``outputSchemaType`` with ``outputTypeClassName``)."""
    if not spec.output:
        return None
    return _codec_or_schema(
        hot,
        spec.output_serde_class_name,
        spec.output_schema_type,
        spec.config.output_type_class_name,
        spec.output_schema_properties,
        "outputSchemaType",
    )


def extra_output_schemas(hot: HotPath, spec: FunctionSpec) -> dict[str, Schema]:
    """Schemas of ``customSchemaOutputs`` topics, registered by ``context.publish``'s producers."""
    out: dict[str, Schema] = {}
    for topic, schema_type in spec.custom_schema_outputs.items():
        resolved = topic_schema(
            hot, schema_type, spec.config.output_type_class_name, None, f"customSchemaOutputs[{topic}]"
        )
        if resolved.schema is not None:
            out[topic] = resolved.schema
    return out


def subscription_schema(spec: FunctionSpec, schemas: dict[str, TopicSchema]) -> Schema | None:
    """The schema the instance's one subscription registers: the inputs' common schema, if any.

    The client registers one schema per consumer; inputs whose schemas differ are each
    still decoded with their own, but none is registered (logged once).
    """
    registered = {topic: ts.registered for topic, ts in schemas.items()}
    kinds = {
        None if s is None else (s.schema_info().schema_type(), s.schema_info().schema())
        for s in registered.values()
    }
    if len(kinds) == 1:
        return next(iter(registered.values()))
    log.warning(
        "function %s: its inputs have different schemas; each is decoded with its own, none is "
        "registered with the broker (one subscription registers one schema)",
        spec.fqfn,
    )
    return None
