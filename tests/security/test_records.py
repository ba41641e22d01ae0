"""A metadata or assignment record that cannot be decoded is skipped and counted, never a crash."""

from __future__ import annotations

from collections.abc import Iterator

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, new_cluster, wait_until
from tests.security.conftest import call, create_function, unique

# A length-delimited field claiming 127 bytes with 3 present: no protobuf message decodes it.
GARBAGE = b"\x0a\x7f!!!"


@pytest.fixture
def worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("records")), 1)
    yield c
    c.stop_all()


def _counters(port: int) -> dict[str, float]:
    metrics = call(port, "GET", "/admin/v2/worker-stats/metrics").json()[0]["metrics"]
    return {k: v for k, v in metrics.items() if k.startswith("magnetar_worker_undecodable")}


def test_undecodable_records_are_skipped_and_counted(worker: Cluster, client: pulsar.Client) -> None:
    ns = worker.namespace
    port = worker.workers[0].port
    name = unique("keep")
    assert create_function(port, name).status == 200
    epoch = str(call(port, "GET", "/admin/v2/worker/cluster/leader").json()["epoch"])
    for topic, key, props in (
        ("metadata", "public/default/garbage", {"version": "0", "epoch": epoch}),
        ("assignments", "public/default/garbage:0", {"epoch": epoch}),
    ):
        producer = client.create_producer(f"persistent://{ns}/{topic}")
        producer.send(GARBAGE, partition_key=key, properties=props)
        producer.close()
    assert wait_until(lambda: _counters(port) and min(_counters(port).values()) >= 1), _counters(port)
    # A restart reads both records again from the topics: the worker still comes up, whole.
    w = worker.workers[0]
    w.proc.terminate()
    w.proc.wait(30)
    worker.workers.remove(w)
    again = worker.start_worker(w.worker_id)
    assert wait_until(lambda: call(again.port, "GET", "/initialized").status == 204)
    assert call(again.port, "GET", f"/admin/v3/functions/public/default/{name}").status == 200
    assert min(_counters(again.port).values()) >= 1
    text = call(again.port, "GET", "/metrics").body.decode()
    assert "magnetar_worker_undecodable_metadata_records" in text
    # The cluster still works: a new function is created and scheduled after the garbage.
    assert create_function(again.port, unique("after")).status == 200
