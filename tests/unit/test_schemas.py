"""Schema resolution and encodings (pure logic), on both twins' codecs."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from pulsar.schema import AvroSchema, Integer, JsonSchema, Record, Schema, String, StringSchema

from engine.broker.schema_registry import _describe, incompatibility
from engine.function.errors import FunctionLoadError
from engine.function.schemas import KeyValue, KeyValueSchema, PrimitiveSchema, topic_schema
from engine.hotpath import HotPath

MOD = __name__


class Point(Record):  # type: ignore[misc]
    x = Integer()
    y = Integer()


class Labelled(Record):  # type: ignore[misc]
    x = Integer()
    label = String()


class NoArgSchema(StringSchema):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()


class PropsSchema(StringSchema):  # type: ignore[misc]
    def __init__(self, properties: dict[str, str]) -> None:
        super().__init__()
        self.properties = properties


class BothSchema(JsonSchema):  # type: ignore[misc]
    def __init__(self, record_cls: type, properties: dict[str, str]) -> None:
        super().__init__(record_cls)
        self.properties = properties


@pytest.mark.parametrize(
    ("schema_type", "value", "payload"),
    [
        ("INT8", -2, b"\xfe"),
        ("INT16", 258, b"\x01\x02"),
        ("INT32", -1, b"\xff\xff\xff\xff"),
        ("INT64", 1, b"\x00" * 7 + b"\x01"),
        ("FLOAT", 1.5, struct.pack(">f", 1.5)),
        ("DOUBLE", -0.25, struct.pack(">d", -0.25)),
        ("BOOLEAN", True, b"\x01"),
    ],
)
def test_primitives_use_pulsars_big_endian_encoding(
    hot: HotPath, schema_type: str, value: Any, payload: bytes
) -> None:
    codec = topic_schema(hot, schema_type).codec
    assert codec.encode(value) == payload
    assert codec.decode(payload) == value


def test_primitives_refuse_wrong_types_and_sizes() -> None:
    schema = PrimitiveSchema("INT32")
    with pytest.raises(TypeError):
        schema.encode("1")
    with pytest.raises(TypeError):
        schema.encode(True)
    with pytest.raises(ValueError, match="expected 4 bytes"):
        schema.decode(b"\x00")
    with pytest.raises(ValueError):
        schema.encode(2**40)
    assert PrimitiveSchema("INT32").registrable and not PrimitiveSchema("BOOLEAN").registrable


def test_key_value_inline_round_trip(hot: HotPath) -> None:
    resolved = topic_schema(
        hot,
        "KEY_VALUE",
        f"{MOD}.Point",
        {"key.schema.type": "INT32", "value.schema.type": "JSON"},
    )
    assert resolved.registered is None  # the client cannot build a KEY_VALUE SchemaInfo
    payload = resolved.codec.encode((7, Point(x=1, y=2)))
    assert payload[:8] == b"\x00\x00\x00\x04\x00\x00\x00\x07"
    kv = resolved.codec.decode(payload)
    assert isinstance(kv, KeyValue) and kv.key == 7 and (kv.value.x, kv.value.y) == (1, 2)
    with pytest.raises(ValueError, match="lengths do not match"):
        KeyValueSchema(StringSchema(), StringSchema()).decode(b"\x00\x00\x00\x09ab\x00\x00\x00\x00")


def test_records_and_schemas_resolve_as_apaches_instance_creates_them(hot: HotPath) -> None:
    avro = topic_schema(hot, "AVRO", f"{MOD}.Point")
    assert isinstance(avro.schema, AvroSchema) and avro.record is Point
    assert avro.codec.decode(avro.codec.encode(Point(x=3, y=4))).y == 4
    json_rec = topic_schema(hot, "json", f"{MOD}.Point")
    assert isinstance(json_rec.schema, JsonSchema)
    plain_json = topic_schema(hot, "JSON")
    assert plain_json.registered is None and plain_json.codec.decode(b'{"a": 1}') == {"a": 1}
    assert isinstance(topic_schema(hot, "STRING").registered, StringSchema)
    assert topic_schema(hot, "BYTES").registered is None
    assert isinstance(topic_schema(hot, f"{MOD}.NoArgSchema").schema, NoArgSchema)
    props = topic_schema(hot, f"{MOD}.PropsSchema", None, {"p": "1"}).schema
    assert isinstance(props, PropsSchema) and props.properties == {"p": "1"}
    both = topic_schema(hot, f"{MOD}.BothSchema", f"{MOD}.Point", {"q": "2"}).schema
    assert isinstance(both, BothSchema) and both.properties == {"q": "2"}
    with pytest.raises(FunctionLoadError, match=r"AVRO needs a pulsar\.schema\.Record class"):
        topic_schema(hot, "AVRO")
    with pytest.raises(FunctionLoadError, match=r"expected a pulsar\.schema\.Record subclass"):
        topic_schema(hot, "AVRO", f"{MOD}.NoArgSchema")
    with pytest.raises(FunctionLoadError, match=r"expected a pulsar\.schema\.Schema subclass"):
        topic_schema(hot, f"{MOD}.Point")


def _d(schema: Schema) -> dict[str, Any]:
    return _describe(schema)


def test_compatibility_follows_type_and_record_fields() -> None:
    assert incompatibility(_d(AvroSchema(Point)), _d(AvroSchema(Point))) is None
    assert (
        incompatibility(_d(AvroSchema(Point)), _d(JsonSchema(Point)))
        == "the topic's schema is AVRO, not JSON"
    )
    why = incompatibility(_d(AvroSchema(Point)), _d(AvroSchema(Labelled)))
    assert why == "field 'label' is not in the topic's AVRO schema and has no default"
    assert incompatibility(_d(AvroSchema(Labelled)), _d(AvroSchema(Point))) is not None  # y is missing
    assert incompatibility(_d(StringSchema()), _d(StringSchema())) is None


def test_custom_schema_outputs_resolve_without_changing_the_submitted_config() -> None:
    from engine.config import parse_function_config, resolve

    cfg = parse_function_config(
        {
            "className": "m.F",
            "inputs": ["a"],
            "output": "o",
            "customSchemaOutputs": {
                "o": '{"schemaType": "KEY_VALUE", "schemaProperties": {"key.schema.type": "INT32"}}',
                "side": "AVRO",
            },
        }
    )
    spec = resolve(cfg)
    assert spec.output_schema_type == "KEY_VALUE"
    assert spec.output_schema_properties == {"key.schema.type": "INT32"}
    assert spec.custom_schema_outputs == {"persistent://public/default/side": "AVRO"}
    assert spec.config.output_schema_type is None and "outputSchemaType" not in spec.config.to_dict()
