"""Reproduction: pulsar-lite with schemas, seek and topic patterns (Magnetar only starts the broker).

1. Any producer or consumer schema is accepted on any topic: an AVRO topic takes a JSON
   consumer, a STRING consumer and a STRING producer (Apache refuses them: IncompatibleSchema).
2. Schema look-ups (``get_schema_info``) are not answered: they time out; messages carry
   no schema version (``-1``), so an ``AvroSchema`` consumer's ``msg.value()`` waits the
   operation timeout before decoding with its own schema.
3. ``consumer.seek(MessageId.latest)`` is acknowledged, then nothing more is delivered,
   not even a message sent after the seek.
4. A topic-pattern subscription fails with LookupError.

Run: ``python bench/repro/schemas_and_seek.py`` (prints what it saw; exits 0 either way).
"""

import re
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import pulsar
from pulsar.schema import AvroSchema, Integer, JsonSchema, Record, String, StringSchema

from engine.broker import EmbeddedBroker, make_client
from engine.broker.client import BrokerOptions


class Reading(Record):  # type: ignore[misc]
    name = String()
    n = Integer()


def attempt(label: str, fn: Callable[[], Any]) -> None:
    try:
        print(f"{label}: ok {fn()!r}")
    except Exception as exc:  # each outcome is what is being measured
        print(f"{label}: {type(exc).__name__} {exc}")


broker = EmbeddedBroker(tempfile.mkdtemp(prefix="repro-")).start()
client = make_client(BrokerOptions(url=broker.url))
short = pulsar.Client(broker.url, operation_timeout_seconds=2)


def topic() -> str:
    return f"persistent://public/default/repro-{uuid.uuid4().hex[:8]}"


try:
    avro = topic()
    client.create_producer(avro, schema=AvroSchema(Reading)).send(Reading(name="x", n=1))
    attempt(
        "JSON consumer on an AVRO topic",
        lambda: client.subscribe(avro, "a", schema=JsonSchema(Reading)) and "accepted",
    )
    attempt(
        "STRING consumer on an AVRO topic",
        lambda: client.subscribe(avro, "b", schema=StringSchema()) and "accepted",
    )
    attempt(
        "STRING producer on an AVRO topic",
        lambda: client.create_producer(avro, schema=StringSchema()) and "accepted",
    )
    attempt("schema look-up", lambda: short._client.get_schema_info(avro, 0).schema())
    consumer = short.subscribe(
        avro, "c", schema=AvroSchema(Reading), initial_position=pulsar.InitialPosition.Earliest
    )
    msg = consumer.receive(5000)
    started = time.monotonic()
    attempt("schema version of a message", lambda: msg.schema_version())
    attempt("AvroSchema msg.value()", lambda: (msg.value().n, f"{time.monotonic() - started:.1f} s"))

    plain = topic()
    producer = client.create_producer(plain)
    for i in range(3):
        producer.send(f"old{i}".encode())
    sub = client.subscribe(plain, "s", initial_position=pulsar.InitialPosition.Earliest)
    attempt("seek to latest", lambda: sub.seek(pulsar.MessageId.latest) or "acknowledged")
    producer.send(b"after-seek")
    got = []
    while True:
        try:
            m = sub.receive(1500)
        except pulsar.Timeout:
            break
        got.append(m.data())
        sub.acknowledge(m)
    print(f"received after the seek: {got}")
    attempt(
        "pattern subscription",
        lambda: client.subscribe(re.compile("persistent://public/default/repro-.*"), "p"),
    )
finally:
    short.close()
    client.close()
    broker.stop()
