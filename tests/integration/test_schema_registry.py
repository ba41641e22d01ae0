"""The engine's schema registry (pulsar-lite keeps no schemas) read and written on the real broker."""

from __future__ import annotations

import threading
import uuid

import pulsar
import pytest
from pulsar.schema import AvroSchema, JsonSchema

from engine.broker import EmbeddedBroker
from engine.broker.capabilities import BrokerCapabilities
from engine.broker.client import make_client
from engine.broker.schema_registry import IncompatibleSchemaError, SchemaChecks
from tests.integration.schema_functions import Invoice, Order


def test_records_are_seen_by_later_checks_and_by_other_clients(
    broker: EmbeddedBroker, client: pulsar.Client
) -> None:
    topic = f"persistent://public/default/registry-{uuid.uuid4().hex[:8]}"
    SchemaChecks(client, BrokerCapabilities.pulsar_lite()).register_producer(topic, AvroSchema(Invoice))
    again = SchemaChecks(client, BrokerCapabilities.pulsar_lite())
    recorded = again.check_consumer(topic, AvroSchema(Invoice))
    assert recorded is not None and recorded["type"] == "AVRO"
    other = make_client(broker.options())
    try:
        checks = SchemaChecks(other, BrokerCapabilities.pulsar_lite())
        with pytest.raises(IncompatibleSchemaError, match="the topic's schema is AVRO, not JSON"):
            checks.check_consumer(topic, JsonSchema(Invoice))
        with pytest.raises(IncompatibleSchemaError, match=r"cannot produce to .* JSON schema"):
            checks.register_producer(topic, JsonSchema(Order))
    finally:
        other.close()


def test_many_look_ups_on_one_client_while_it_receives(broker: EmbeddedBroker) -> None:
    """Instances sharing a client check schemas while another one receives (the client once crashed)."""
    shared = make_client(broker.options())
    prefix = f"persistent://public/default/registry-{uuid.uuid4().hex[:8]}"
    consumer = shared.subscribe(f"{prefix}-in", "busy", consumer_type=pulsar.ConsumerType.Shared)
    stop = threading.Event()
    errors: list[BaseException] = []

    def receive() -> None:
        while not stop.is_set():
            try:
                consumer.receive(50)
            except pulsar.Timeout:
                continue

    def check(n: int) -> None:
        try:
            for i in range(40):
                checks = SchemaChecks(shared, BrokerCapabilities.pulsar_lite())
                checks.register_producer(f"{prefix}-{n}-{i % 4}", AvroSchema(Invoice))
                checks.check_consumer(f"{prefix}-{n}-{i % 4}", AvroSchema(Invoice))
        except BaseException as exc:  # handed to the test thread, which raises it
            errors.append(exc)

    receiver = threading.Thread(target=receive)
    workers = [threading.Thread(target=check, args=(n,)) for n in range(2)]
    receiver.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    stop.set()
    receiver.join(10)
    try:
        assert not errors, errors
        assert not any(w.is_alive() for w in workers)
        fresh = make_client(broker.options())
        try:
            checks = SchemaChecks(fresh, BrokerCapabilities.pulsar_lite())
            for n in range(2):
                for i in range(4):
                    assert checks.check_consumer(f"{prefix}-{n}-{i}", AvroSchema(Invoice)) is not None
        finally:
            fresh.close()
    finally:
        consumer.close()
        shared.close()
