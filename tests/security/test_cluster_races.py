"""Two real workers: concurrent creates through both are first-writer-wins, forwarded writes are validated."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, new_cluster, rest, wait_until
from tests.security.conftest import call, create_function, unique


@pytest.fixture
def cluster2(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path), 2)
    yield c
    c.stop_all()


def test_concurrent_creates_through_two_workers(cluster2: Cluster) -> None:
    name = unique("race")
    ports = [w.port for w in cluster2.workers]
    barrier = threading.Barrier(6)
    statuses: list[int] = []
    lock = threading.Lock()

    def create(port: int) -> None:
        barrier.wait()
        ans = create_function(port, name)
        with lock:
            statuses.append(ans.status)

    threads = [threading.Thread(target=create, args=(ports[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200, 409, 409, 409, 409, 409], statuses
    for port in ports:
        assert wait_until(
            lambda p=port: call(p, "GET", f"/admin/v3/functions/public/default/{name}").status == 200
        )


def test_limits_hold_for_forwarded_writes(cluster2: Cluster) -> None:
    leader = rest(cluster2.workers[0].url, "GET", "/admin/v2/worker/cluster/leader")["workerId"]
    follower = next(w for w in cluster2.workers if w.worker_id != leader)
    ans = create_function(follower.port, unique("par"), parallelism=5000)
    assert ans.status == 400 and "maxParallelism" in ans.reason
    ns = cluster2.namespace
    ans = create_function(follower.port, unique("ns"), output=f"persistent://{ns}/metadata")
    assert ans.status == 400 and "internal namespace" in ans.reason
    assert create_function(follower.port, unique("ok")).status == 200
