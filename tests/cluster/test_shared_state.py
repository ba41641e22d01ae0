"""Two real worker processes sharing function state in a real PostgreSQL server."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.state import open_state_store
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.cluster.test_cluster import status
from tests.integration.harness import produce

EXAMPLE = Path(__file__).resolve().parent / "wordcount_example.py"


@pytest.fixture
def pg_cluster(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Cluster]:
    c = new_cluster(
        broker, str(tmp_path_factory.mktemp("pgcluster")), 2, ["--state-storage-url", postgres_url]
    )
    yield c
    c.stop_all()


def test_counters_from_instances_on_both_workers_add_up(
    pg_cluster: Cluster, client: pulsar.Client, postgres_url: str
) -> None:
    name = f"wc{uuid.uuid4().hex[:6]}"
    inp = f"{name}-in"
    res = magnetar(
        "functions", "create", "--admin-url", pg_cluster.workers[0].url, "--name", name,
        "--py", str(EXAMPLE), "--classname", "wordcount_example.WordCount", "--inputs", inp,
        "--parallelism", "2", "--subs-position", "Earliest",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: status(pg_cluster, name)["numRunning"] == 2, timeout=30)
    owners = {i["status"]["workerId"] for i in status(pg_cluster, name)["instances"]}
    assert owners == {"w1", "w2"}
    rng = random.Random(3)
    vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon"]
    lines = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 9))) for _ in range(6000)]
    want = Counter(w for line in lines for w in line.split())
    produce(client, inp, lines)
    fqfn = f"public/default/{name}"
    store = open_state_store(postgres_url)
    try:
        assert wait_until(lambda: store.get_counter(fqfn, "__lines__") == len(lines), timeout=60), (
            store.get_counter(fqfn, "__lines__")
        )
        assert {w: store.get_counter(fqfn, w) for w in vocabulary} == dict(want)
    finally:
        store.close()
    # Both workers' instances did part of the work.
    received = [i["status"]["numReceived"] for i in status(pg_cluster, name)["instances"]]
    assert all(r > 0 for r in received) and sum(received) >= len(lines), received
    # Either worker answers for the shared state, through REST and the CLI.
    for w in pg_cluster.workers:
        got = rest(w.url, "GET", f"/admin/v3/functions/{fqfn}/state/alpha")
        assert got == {"key": "alpha", "numberValue": want["alpha"], "version": 0}
    res = magnetar(
        "functions", "querystate", "--admin-url", pg_cluster.workers[1].url, "--fqfn", fqfn,
        "--key", "beta", "--output", "json",
    )  # fmt: skip
    assert res.returncode == 0 and orjson.loads(res.stdout)["numberValue"] == want["beta"], res
    res = magnetar(
        "functions", "putstate", "--admin-url", pg_cluster.workers[0].url, "--fqfn", fqfn,
        "--state", '{"key": "note", "stringValue": "shared"}',
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (
        rest(pg_cluster.workers[1].url, "GET", f"/admin/v3/functions/{fqfn}/state/note")["stringValue"]
        == "shared"
    )
