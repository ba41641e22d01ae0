"""``resources.ram`` in the process runtime: a child past it is killed and restarted, naming why."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.instance.settlement import DLQ_ERROR_PROPERTY
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.cluster.test_process_runtime import children
from tests.integration.harness import consume, produce

GROW_PACKAGE = Path(__file__).resolve().parent / "grow_example.py"
RAM = 200 * 2**20


@pytest.fixture(scope="module")
def process_worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("ram")), 1, ["--runtime", "process"])
    yield c
    c.stop_all()


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    st = rest(cluster.workers[0].url, "GET", f"/admin/v3/functions/public/default/{name}/status", timeout=10)
    return st["instances"][0]["status"]  # type: ignore[no-any-return]


def test_a_child_past_its_ram_is_restarted_and_its_input_dead_lettered(
    process_worker: Cluster, client: pulsar.Client
) -> None:
    name = f"grow{uuid.uuid4().hex[:6]}"
    inp, out, dlq = f"{name}-in", f"{name}-out", f"{name}-dlq"
    res = magnetar(
        "functions", "create", "--admin-url", process_worker.workers[0].url, "--name", name,
        "--py", str(GROW_PACKAGE), "--classname", "grow_example.Grow", "--inputs", inp, "--output", out,
        "--subs-position", "Earliest", "--ram", str(RAM), "--max-message-retries", "1",
        "--dead-letter-topic", dlq,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: _status(process_worker, name)["running"], timeout=40)
    produce(client, inp, ["a", "grow", "b"], batching=False)
    seen_error = wait_until(lambda: "exceeded ram" in (e := _status(process_worker, name)["error"]) and e, 30)
    assert seen_error == "instance process exceeded ram 200 MB"
    dead = consume(client, dlq, 1, timeout=60)
    assert [m.data() for m in dead] == [b"grow"]
    assert (
        "instance exceeded ram 200 MB while processing this message"
        in dead[0].properties()[DLQ_ERROR_PROPERTY]
    )
    outputs: set[bytes] = set()
    deadline = time.monotonic() + 30
    while not {b"a!", b"b!"} <= outputs and time.monotonic() < deadline:
        outputs |= {m.data() for m in consume(client, out, 1, timeout=1, sub="out")}
    assert {b"a!", b"b!"} <= outputs
    st = wait_until(lambda: (s := _status(process_worker, name))["running"] and s, timeout=30)
    assert st and st["numRestarts"] >= 1
    texts = [e["exceptionString"] for e in st["latestSystemExceptions"]]
    assert any("exceeded ram 200 MB" in t for t in texts), texts
    with open(os.path.join(process_worker.data_root, "w1.log")) as fh:
        assert "exceeded ram 200 MB" in fh.read()


def test_a_child_gets_a_cpu_quota_of_its_resources_cpu(process_worker: Cluster) -> None:
    name = f"cpu{uuid.uuid4().hex[:6]}"
    res = magnetar(
        "functions", "create", "--admin-url", process_worker.workers[0].url, "--name", name,
        "--py", str(GROW_PACKAGE), "--classname", "grow_example.Grow", "--inputs", f"{name}-in",
        "--output", f"{name}-out", "--cpu", "0.5",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: _status(process_worker, name)["running"], timeout=40)
    pids = children(process_worker.workers[0].proc.pid)
    pid = pids[(f"public/default/{name}", 0)]
    with open(f"/proc/{pid}/cgroup") as fh:
        cpu_line = next(line for line in fh if line.split(":")[1].split(",").count("cpu"))
    group = cpu_line.strip().split(":", 2)[2]
    assert group.startswith("/magnetar/"), cpu_line
    with open(f"/sys/fs/cgroup/cpu{group}/cpu.cfs_quota_us") as fh:
        assert int(fh.read()) == 50_000  # half of each 100 ms period
