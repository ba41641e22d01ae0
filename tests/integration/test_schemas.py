"""Schemas through ``pulsar.schema`` end to end on the real broker, on both twins.

A function's output is read by a plain pulsar-client consumer subscribed with the same
schema, as an Apache user reads it.
"""

from __future__ import annotations

import re
import struct
import time
import uuid
from typing import Any

import pulsar
import pytest
from pulsar.schema import AvroSchema, JsonSchema, Schema

from engine.broker import EmbeddedBroker
from engine.broker.capabilities import workarounds_run
from engine.config import ConfigError, parse_function_config, resolve
from engine.function.errors import FunctionLoadError
from engine.hotpath import HotPath
from tests.integration.harness import runner_for
from tests.integration.schema_functions import Invoice, Order

MOD = "tests.integration.schema_functions"
ORDERS = [Order(item=f"item{i}", quantity=i + 1) for i in range(3)]


def _send(client: pulsar.Client, topic: str, schema: Schema | None, values: list[Any]) -> None:
    producer = client.create_producer(topic, schema=schema) if schema else client.create_producer(topic)
    for v in values:
        producer.send(v)
    producer.close()


def _read(
    client: pulsar.Client, topic: str, schema: Schema | None, count: int, timeout: float = 30.0
) -> list[Any]:
    """``count`` values read by a consumer subscribed with ``schema`` (``msg.value()``)."""
    kwargs: dict[str, Any] = {"schema": schema} if schema is not None else {}
    consumer = client.subscribe(
        topic,
        f"reader-{uuid.uuid4().hex[:6]}",
        initial_position=pulsar.InitialPosition.Earliest,
        consumer_type=pulsar.ConsumerType.Shared,  # pulsar-lite may repeat entries to Exclusive consumers
        **kwargs,
    )
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            try:
                msg = consumer.receive(200)
            except pulsar.Timeout:
                continue
            got.append(msg.value())
            consumer.acknowledge(msg)
    finally:
        consumer.close()
    return got


@pytest.fixture(scope="module")
def short_client(broker: EmbeddedBroker) -> Any:
    """A client whose schema look-ups give up after 1 s (pulsar-lite answers none; see the README)."""
    c = pulsar.Client(broker.url, operation_timeout_seconds=1)
    yield c
    c.close()


def _invoices(values: list[Any]) -> list[tuple[str, int, int]]:
    return sorted((v.item, v.quantity, v.total) for v in values)


EXPECTED = [(f"item{i}", i + 1, (i + 1) * 10) for i in range(3)]


@pytest.mark.parametrize("schema_type", ["AVRO", "JSON"])
def test_record_function_output_is_read_by_a_plain_consumer_with_the_same_schema(
    broker: EmbeddedBroker,
    short_client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    schema_type: str,
) -> None:
    inp, out = f"{topic_prefix}-orders", f"{topic_prefix}-invoices"
    schema_cls = AvroSchema if schema_type == "AVRO" else JsonSchema
    config = {
        "className": f"{MOD}.PriceOrder",
        "inputSpecs": {inp: {"schemaType": schema_type}},
        "inputTypeClassName": f"{MOD}.Order",
        "output": out,
        "outputSchemaType": schema_type,
        "outputTypeClassName": f"{MOD}.Invoice",
    }
    with runner_for(broker.url, hot.name, data_dir, config) as runner:
        _send(short_client, inp, schema_cls(Order), ORDERS)
        got = _read(short_client, out, schema_cls(Invoice), len(ORDERS))
        status = runner.status()
    assert all(isinstance(v, Invoice) for v in got)
    assert _invoices(got) == EXPECTED
    assert sum(i["numUserExceptions"] for i in status) == 0


def test_custom_schema_outputs_register_the_schema_for_context_publish(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, invoices = f"{topic_prefix}-orders", f"{topic_prefix}-published"
    config = {
        "className": f"{MOD}.PublishInvoice",
        "customSchemaInputs": {inp: '{"schemaType": "JSON"}'},
        "inputTypeClassName": f"{MOD}.Order",
        "customSchemaOutputs": {invoices: "JSON"},
        "outputTypeClassName": f"{MOD}.Invoice",
        "userConfig": {"invoices": invoices},
    }
    with runner_for(broker.url, hot.name, data_dir, config):
        _send(client, inp, JsonSchema(Order), ORDERS)
        got = _read(client, invoices, JsonSchema(Invoice), len(ORDERS))
    assert _invoices(got) == EXPECTED


def test_primitive_schemas_use_pulsars_encoding(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-ints", f"{topic_prefix}-squares"
    config = {
        "className": f"{MOD}.Square",
        "inputSpecs": {inp: {"schemaType": "INT32"}},
        "output": out,
        "outputSchemaType": "INT64",
    }
    numbers = [-3, 0, 7, 46340]
    with runner_for(broker.url, hot.name, data_dir, config):
        _send(client, inp, None, [struct.pack(">i", n) for n in numbers])
        got = _read(client, out, None, len(numbers))
    assert sorted(struct.unpack(">q", b)[0] for b in got) == sorted(n * n for n in numbers)


def test_key_value_schema_inline_encoding(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-kv", f"{topic_prefix}-kv-swapped"
    props = {"key.schema.type": "STRING", "value.schema.type": "STRING"}
    config = {
        "className": f"{MOD}.SwapKeyValue",
        "inputSpecs": {inp: {"schemaType": "KEY_VALUE", "schemaProperties": props}},
        "output": out,
        "outputSchemaType": "KEY_VALUE",
        "customSchemaOutputs": {out: '{"schemaType": "KEY_VALUE", "schemaProperties": {}}'},
    }

    def inline(k: bytes, v: bytes) -> bytes:
        return len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v

    with runner_for(broker.url, hot.name, data_dir, config):
        _send(client, inp, None, [inline(b"k1", b"v1"), inline(b"key2", b"")])
        got = _read(client, out, None, 2)
    assert sorted(got) == sorted([inline(b"v1", b"k1"), inline(b"", b"key2")])


def test_a_record_schema_without_a_record_class_or_an_unknown_type_is_a_named_error(
    broker: EmbeddedBroker, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    with pytest.raises(ConfigError, match="outputSchemaType"):
        resolve(
            parse_function_config(
                {"className": "x.F", "inputs": ["a"], "output": "b", "outputSchemaType": "XML"}
            )
        )
    config = {
        "className": f"{MOD}.PriceOrder",
        "inputSpecs": {f"{topic_prefix}-in": {"schemaType": "AVRO"}},
        "output": f"{topic_prefix}-out",
    }
    runner = runner_for(broker.url, hot.name, data_dir, config)
    with pytest.raises(FunctionLoadError, match=r"AVRO needs a pulsar\.schema\.Record class"):
        with runner:
            pass


def test_the_next_functions_input_schema_is_checked_against_the_output_schema(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    """Chained functions: the broker (here: the engine, as pulsar-lite checks nothing) refuses a mismatch."""
    orders, invoices, summaries = (f"{topic_prefix}-{n}" for n in ("orders", "invoices", "summaries"))
    first = {
        "name": "price",
        "className": f"{MOD}.PriceOrder",
        "inputSpecs": {orders: {"schemaType": "AVRO"}},
        "inputTypeClassName": f"{MOD}.Order",
        "output": invoices,
        "outputSchemaType": "AVRO",
        "outputTypeClassName": f"{MOD}.Invoice",
    }

    def second(schema_type: str, record: str) -> dict[str, Any]:
        return {
            "name": f"next-{schema_type.lower()}-{record.lower()}",
            "className": f"{MOD}.Summarize",
            "inputSpecs": {invoices: {"schemaType": schema_type}},
            "inputTypeClassName": f"{MOD}.{record}",
            "output": summaries,
            "outputSchemaType": "STRING",
        }

    with runner_for(broker.url, hot.name, data_dir, first):
        for schema_type, record, why in (
            ("JSON", "InvoiceSummary", "the topic's schema is AVRO, not JSON"),
            ("AVRO", "Shipment", "field 'address' is not in the topic's AVRO schema"),
        ):
            with pytest.raises(pulsar.IncompatibleSchema, match=re.escape(why)):
                with runner_for(broker.url, hot.name, f"{data_dir}/{record}", second(schema_type, record)):
                    pass
        # A reader schema with a subset of the fields, in another order, reads what was written.
        with runner_for(broker.url, hot.name, f"{data_dir}/ok", second("AVRO", "InvoiceSummary")):
            _send(client, orders, AvroSchema(Order), ORDERS)
            got = _read(client, summaries, None, len(ORDERS))
    assert sorted(b.decode() for b in got) == sorted(f"item{i}={(i + 1) * 10}" for i in range(3))
    assert "pulsar-lite:engine-checks-schemas" in workarounds_run()
