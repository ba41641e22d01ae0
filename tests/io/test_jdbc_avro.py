"""The JDBC sinks on AVRO inputs (``--schema-type AVRO``): fields to columns, on real PostgreSQL and SQLite.

The records are written by a plain pulsar-client producer with ``AvroSchema``. pulsar-lite
keeps no schemas, so the topic's schema is recorded as a Magnetar producer (a function's
AVRO output) records it, through :class:`~engine.broker.schema_registry.SchemaChecks`;
the sink decodes each record with that writer's schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pulsar
import pytest
from pulsar.schema import AvroSchema, Double, Integer, Record, String

from engine.broker.capabilities import BrokerCapabilities
from engine.broker.schema_registry import SchemaChecks
from tests.io.conftest import consume, produce, topic, wait_until


class Reading(Record):
    id = Integer()
    sensor = String()
    value = Double()


SCHEMA = AvroSchema(Reading)


def _avro(items: list[tuple[int | None, str, float]]) -> list[bytes]:
    return [SCHEMA.encode(Reading(id=i, sensor=s, value=v)) for i, s, v in items]


def _record_schema(client: pulsar.Client, name: str) -> None:
    """Record the topic's AVRO schema as a Magnetar producer does on a broker that keeps none."""
    SchemaChecks(client, BrokerCapabilities.pulsar_lite()).register_producer(name, SCHEMA)


@dataclass
class Database:
    """One of the two real databases: its sink type, JDBC URL and a way to run SQL on it."""

    sink_type: str
    url: str
    run: Callable[[str], list[tuple[Any, ...]]]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        path = tmp_path / "sink.db"

        def run_sqlite(sql: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return list(conn.execute(sql).fetchall())

        return Database("jdbc-sqlite", f"jdbc:sqlite:{path}", run_sqlite)
    url = str(request.getfixturevalue("postgres_url"))

    def run_pg(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    return Database("jdbc-postgres", f"jdbc:{url}", run_pg)


def _sink(run_connector: Any, db: Database, src: str, config: dict[str, Any], *extra: str) -> Any:
    return run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        db.sink_type,
        "--inputs",
        src,
        "--schema-type",
        "AVRO",
        "--subs-position",
        "Earliest",
        "--sink-config",
        orjson.dumps({"jdbcUrl": db.url, "tableName": "readings", **config}).decode(),
        *extra,
    )


@pytest.mark.parametrize("hotpath", ["native", "pure"])
def test_avro_records_are_inserted_field_by_column(
    run_connector: Any, client: pulsar.Client, database: Database, hotpath: str
) -> None:
    database.run("CREATE TABLE readings (id INTEGER, sensor TEXT, value DOUBLE PRECISION)")
    src = topic()
    _record_schema(client, src)
    sink = _sink(run_connector, database, src, {"batchSize": 40}, "--hotpath", hotpath)
    producer = client.create_producer(src, schema=SCHEMA, batching_max_publish_delay_ms=1)
    for i in range(100):
        producer.send_async(Reading(id=i, sensor=f"s{i % 3}", value=i / 4), None)
    producer.flush()
    producer.close()
    assert wait_until(lambda: sink.instances[0].sink_stats.written == 100), sink.status()
    rows = database.run("SELECT id, sensor, value FROM readings ORDER BY id")
    assert rows == [(i, f"s{i % 3}", i / 4) for i in range(100)]


def test_avro_records_are_upserted_by_key(
    run_connector: Any, client: pulsar.Client, database: Database
) -> None:
    database.run("CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT, value DOUBLE PRECISION)")
    src = topic()
    _record_schema(client, src)
    sink = _sink(
        run_connector,
        database,
        src,
        {"key": "id", "nonKey": "sensor,value", "insertMode": "UPSERT", "batchSize": 7},
    )
    produce(client, src, _avro([(i, "old", 1.0) for i in range(30)]))
    produce(client, src, _avro([(i, "new", 2.0) for i in range(0, 30, 3)]))
    assert wait_until(lambda: sink.instances[0].sink_stats.written == 40), sink.status()
    rows = database.run("SELECT id, sensor, value FROM readings ORDER BY id")
    assert rows == [(i, "new", 2.0) if i % 3 == 0 else (i, "old", 1.0) for i in range(30)]


@pytest.mark.parametrize("guarantee", ["ATLEAST_ONCE", "EFFECTIVELY_ONCE"])
def test_undecodable_and_keyless_avro_records_are_dead_lettered(
    run_connector: Any, client: pulsar.Client, database: Database, guarantee: str
) -> None:
    database.run("CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT, value DOUBLE PRECISION)")
    src, dlq = topic(), topic()
    _record_schema(client, src)
    sink = _sink(
        run_connector,
        database,
        src,
        {"key": "id", "nonKey": "sensor,value", "insertMode": "UPSERT"},
        "--processing-guarantees",
        guarantee,
        "--max-redeliver-count",
        "1",
        "--dead-letter-topic",
        dlq,
        "--negative-ack-redelivery-delay-ms",
        "100",
    )
    good = _avro([(1, "a", 1.0), (2, "b", 2.0)])
    keyless = _avro([(None, "nokey", 3.0)])
    # One entry per message: a failed record's redelivery brings back that record alone.
    produce(client, src, [good[0], b"\xff\xfe not avro at all", keyless[0], good[1]], batching=False)
    bad = {b"\xff\xfe not avro at all", keyless[0]}
    errors: dict[bytes, str] = {}

    def dead_letters() -> bool:
        # At least once, a failed input may be handed out (and so dead-lettered) twice.
        errors.update(
            {m.data(): m.properties()["__pfn_error__"] for m in consume(client, dlq, 100, timeout=0.5)}
        )
        return set(errors) == bad

    assert wait_until(dead_letters, timeout=60), (errors, sink.status())
    assert "AvroDecodeError" in errors[b"\xff\xfe not avro at all"]
    assert "key column id" in errors[keyless[0]], errors
    assert wait_until(
        lambda: database.run("SELECT id, sensor FROM readings ORDER BY id") == [(1, "a"), (2, "b")]
    )
    assert sink.instances[0].status()["numDeadLettered"] >= 2


def test_avro_records_wait_for_their_topics_schema(
    run_connector: Any, client: pulsar.Client, tmp_path: Path
) -> None:
    """Records that arrive before any schema is known fail (and come back), and are written once it is."""
    db = tmp_path / "late.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER, sensor TEXT, value REAL)")
    src = topic()
    sink = _sink(
        run_connector,
        Database("jdbc-sqlite", f"jdbc:sqlite:{db}", lambda _sql: []),
        src,
        {},
        "--negative-ack-redelivery-delay-ms",
        "100",
    )
    produce(client, src, _avro([(i, "late", 0.5) for i in range(10)]))
    status = wait_until(
        lambda: (s := sink.status()["instances"][0]["status"])["numSinkExceptions"] >= 10 and s
    )
    assert "no AVRO schema is recorded" in status["latestSystemExceptions"][-1]["exceptionString"], status
    assert status["numWrittenToSink"] == 0
    _record_schema(client, src)
    # At least once: an input failed again and again may come back twice (each is written).
    assert wait_until(lambda: sink.instances[0].sink_stats.written >= 10, timeout=60), sink.status()
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM readings")]
    assert sorted(set(ids)) == list(range(10)), ids
