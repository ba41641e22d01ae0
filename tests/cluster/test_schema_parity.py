"""An Apache YAML config with Avro schemas, through the CLI, a worker and its runtime, on the real broker."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulsar
import pytest
from pulsar.schema import AvroSchema

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, magnetar, new_cluster

EXAMPLE = Path(__file__).resolve().parent / "avro_example.py"


@pytest.fixture(scope="module", params=["thread", "process"])
def cluster1(
    request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One worker running instances in its threads, or in child processes."""
    c = new_cluster(broker, str(tmp_path_factory.mktemp("schema-parity")), 1, ["--runtime", request.param])
    yield c
    c.stop_all()


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("avro_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_avro_function_from_an_apache_yaml_is_read_by_a_plain_avro_consumer(
    cluster1: Cluster, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    name = f"avro{uuid.uuid4().hex[:6]}"
    inp, out = f"persistent://public/default/{name}-in", f"persistent://public/default/{name}-out"
    config = tmp_path / "function.yaml"
    config.write_text(
        f"""tenant: public
namespace: default
name: {name}
className: avro_example.ToFahrenheit
py: {EXAMPLE}
inputSpecs:
  {inp}:
    schemaType: AVRO
inputTypeClassName: avro_example.Reading
output: {out}
outputSchemaType: AVRO
outputTypeClassName: avro_example.Alert
subscriptionPosition: Earliest
"""
    )
    res = magnetar(
        "functions", "create", "--admin-url", cluster1.workers[0].url, "--function-config-file", str(config)
    )
    assert res.returncode == 0 and res.stdout.strip() == "Created successfully", res.stderr
    assert "has no effect" not in res.stderr  # the type class names are used, not warned about
    mod = _example()
    client = pulsar.Client(broker.url, operation_timeout_seconds=1)  # pulsar-lite answers no schema look-up
    try:
        producer = client.create_producer(inp, schema=AvroSchema(mod.Reading))
        for sensor, celsius in (("a", 0), ("b", 100), ("c", -40)):
            producer.send(mod.Reading(sensor=sensor, celsius=celsius))
        consumer = client.subscribe(
            out,
            "reader",
            schema=AvroSchema(mod.Alert),
            initial_position=pulsar.InitialPosition.Earliest,
            consumer_type=pulsar.ConsumerType.Shared,  # pulsar-lite may repeat entries to Exclusive consumers
        )
        got: list[tuple[str, int]] = []
        deadline = time.monotonic() + 60
        while len(got) < 3 and time.monotonic() < deadline:
            try:
                msg = consumer.receive(500)
            except pulsar.Timeout:
                continue
            alert = msg.value()
            got.append((alert.sensor, alert.fahrenheit))
            consumer.acknowledge(msg)
    finally:
        client.close()
    assert sorted(got) == [("a", 32), ("b", 212), ("c", -40)]
