"""Sources and sinks as FunctionDetails (componentType SOURCE/SINK), and instances built from them."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import orjson
import pulsar

from engine.broker import EmbeddedBroker
from engine.hotpath import load
from engine.instance.options import InstanceOptions
from engine.io.connector_config import sink_spec, source_spec
from engine.io.details import (
    build_connector_instance,
    is_connector,
    sink_details,
    sink_from_details,
    source_details,
    source_from_details,
)
from engine.proto import Function_pb2 as pb
from engine.state import open_state_store
from tests.io.conftest import consume, topic, wait_until


def _reparse(d: pb.FunctionDetails) -> pb.FunctionDetails:
    return pb.FunctionDetails.FromString(d.SerializeToString())


def test_source_details_round_trip_as_apache_records_them() -> None:
    spec = source_spec(
        {
            "tenant": "t",
            "namespace": "ns",
            "name": "gen",
            "sourceType": "data-generator",
            "topicName": "out",
            "parallelism": 2,
            "schemaType": "JSON",
            "processingGuarantees": "ATMOST_ONCE",
            "configs": {"count": 5},
        }
    )
    d = _reparse(source_details(spec))
    assert d.componentType == pb.FunctionDetails.SOURCE and is_connector(d)
    assert d.source.builtin == "data-generator" and orjson.loads(d.source.configs) == {"count": 5}
    assert d.sink.topic == "persistent://t/ns/out" and d.sink.schemaType == "JSON"
    assert source_from_details(d) == dataclasses.replace(spec, archive=None)


def test_sink_details_round_trip_as_apache_records_them() -> None:
    spec, configs = sink_spec(
        {
            "name": "rows",
            "sinkType": "jdbc-sqlite",
            "inputs": ["a", "b"],
            "processingGuarantees": "EFFECTIVELY_ONCE",
            "maxMessageRetries": 3,
            "configs": {"jdbcUrl": "jdbc:sqlite:/tmp/x.db", "tableName": "t"},
        }
    )
    d = _reparse(sink_details(spec, configs, "jdbc-sqlite", None))
    assert d.componentType == pb.FunctionDetails.SINK and is_connector(d)
    assert sorted(d.source.inputSpecs) == ["persistent://public/default/a", "persistent://public/default/b"]
    assert d.sink.builtin == "jdbc-sqlite" and not d.sink.topic
    again, again_configs, connector = sink_from_details(d)
    assert again.inputs == spec.inputs and again.max_message_retries == 3
    assert again.processing_guarantees == "EFFECTIVELY_ONCE"
    assert again_configs == configs and connector == ("jdbc-sqlite", None, None)


def test_instances_built_from_details_run(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    hot = load("native")
    store = open_state_store(f"sqlite:///{tmp_path}/state.db")
    mid = topic()
    source = source_details(
        source_spec({"sourceType": "data-generator", "topicName": mid, "configs": {"count": 30}})
    )
    db = tmp_path / "rows.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, name TEXT, value REAL, ts INTEGER)")
    spec, configs = sink_spec(
        {
            "sinkType": "jdbc-sqlite",
            "inputs": [mid],
            "sourceSubscriptionPosition": "Earliest",
            "processingGuarantees": "EFFECTIVELY_ONCE",
            "configs": {"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "rows"},
        }
    )
    sink = sink_details(spec, configs, "jdbc-sqlite", None)
    instances = [
        build_connector_instance(
            _reparse(d),
            None,
            0,
            client,
            hot,
            store,
            None,
            InstanceOptions(),
            str(tmp_path / "data"),
            broker.options().capabilities,
        )
        for d in (source, sink)
    ]
    for inst in instances:
        inst.start()
    try:
        assert [orjson.loads(m.data())["id"] for m in consume(client, mid, 30)] == list(range(30))

        def ids() -> list[int]:
            with sqlite3.connect(db) as conn:
                return [r[0] for r in conn.execute("SELECT id FROM rows ORDER BY id")]

        assert wait_until(lambda: ids() == list(range(30))), ids()
        assert instances[1].status()["numWrittenToSink"] == 30
        # Completions are applied on the source's own thread, once per turn of its loop.
        assert wait_until(lambda: instances[0].status()["numWritten"] == 30)
    finally:
        for inst in instances:
            inst.stop()
        store.close()
