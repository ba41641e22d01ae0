"""The process runtime: every instance is a real child process of its worker, controlled over gRPC."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.cluster.test_cluster import create, status
from tests.integration.harness import consume, produce

CRASHER = Path(__file__).resolve().parent / "crasher_example.py"


@pytest.fixture(scope="module")
def pcluster(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("pcluster")), 2, ["--runtime", "process"])
    yield c
    c.stop_all()


def children(worker_pid: int) -> dict[tuple[str, int], int]:
    """The instance processes of a worker: ``(fqfn, instance id) -> pid``, read from /proc.

    They are the worker's children when spawned, and children of the worker's fork
    server (itself a child of the worker) when forked; both show the child's command line.
    """
    parents: dict[int, int] = {}
    commands: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                commands[int(entry)] = fh.read().decode().replace("\0", " ").split()
        except (OSError, IndexError, ValueError):
            continue
    found = {}
    for pid, argv in commands.items():
        ppid = parents.get(pid)
        if ppid is None or "engine.runtime.child" not in argv:
            continue
        if ppid == worker_pid or parents.get(ppid) == worker_pid:
            found[(argv[argv.index("--fqfn") + 1], int(argv[argv.index("--instance-id") + 1]))] = pid
    return found


def instance(cluster: Cluster, name: str, iid: int) -> dict[str, Any]:
    return status(cluster, name)["instances"][iid]["status"]  # type: ignore[no-any-return]


def test_instances_run_in_child_processes_and_process_messages(
    pcluster: Cluster, client: pulsar.Client
) -> None:
    name = f"proc{uuid.uuid4().hex[:6]}"
    create(pcluster, name, f"{name}-in", f"{name}-out", 2)
    assert wait_until(lambda: status(pcluster, name)["numRunning"] == 2, timeout=40), status(pcluster, name)
    fqfn = f"public/default/{name}"
    pids = {}
    for w in pcluster.workers:
        pids.update({k: v for k, v in children(w.proc.pid).items() if k[0] == fqfn})
    assert sorted(pids) == [(fqfn, 0), (fqfn, 1)]
    # Forked from their worker's fork server, not spawned by the worker itself.
    workers = {w.proc.pid for w in pcluster.workers}
    assert all(_parent(pid) not in workers and _parent(_parent(pid)) in workers for pid in pids.values())
    n = 3000
    produce(client, f"{name}-in", [f"m{i}" for i in range(n)])
    got = consume(client, f"{name}-out", n)
    assert sorted(m.data().decode() for m in got) == sorted(f"m{i}!" for i in range(n))
    # Status and stats come from the children over gRPC.
    assert wait_until(
        lambda: sum(i["status"]["numReceived"] for i in status(pcluster, name)["instances"]) >= n
    )
    stats = rest(pcluster.workers[0].url, "GET", f"/admin/v3/functions/{fqfn}/stats")
    assert stats["processedSuccessfullyTotal"] >= n
    # The Prometheus endpoint of each worker reads its children's metrics.
    text = "".join(rest(w.url, "GET", "/metrics").decode() for w in pcluster.workers)
    lines = [
        ln for ln in text.splitlines() if ln.startswith("pulsar_function_received_total{") and name in ln
    ]
    assert len(lines) == 2 and sum(float(ln.rsplit(" ", 1)[1]) for ln in lines) >= n, lines


def test_killed_instance_reports_at_once_and_restarts(pcluster: Cluster, client: pulsar.Client) -> None:
    name = f"crash{uuid.uuid4().hex[:6]}"
    create(pcluster, name, f"{name}-in", f"{name}-out", 1)
    assert wait_until(lambda: status(pcluster, name)["numRunning"] == 1, timeout=40)
    owner = next(w for w in pcluster.workers if w.worker_id == instance(pcluster, name, 0)["workerId"])
    fqfn = f"public/default/{name}"
    pid = children(owner.proc.pid)[(fqfn, 0)]
    os.kill(pid, signal.SIGKILL)
    # The worker notices the dead child by itself, without a call to it.
    dead = wait_until(
        lambda: (lambda s: s if not s["running"] else None)(instance(pcluster, name, 0)), timeout=5
    )
    assert dead and "SIGKILL" in dead["error"], dead
    t0 = time.perf_counter()
    st = rest(owner.url, "GET", f"/admin/v3/functions/{fqfn}/0/status")
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"status of a dead instance took {elapsed:.2f}s"
    print(f"\nstatus of a SIGKILLed process-runtime instance answered in {elapsed * 1000:.1f} ms")
    # It comes back in a new process, with the restart counted, and processes messages.
    back = wait_until(
        lambda: (lambda s: s if s["running"] else None)(instance(pcluster, name, 0)), timeout=30
    )
    assert back and back["numRestarts"] >= 1, back or st
    assert children(owner.proc.pid)[(fqfn, 0)] != pid
    n = 500
    produce(client, f"{name}-in", [f"a{i}" for i in range(n)])
    got = consume(client, f"{name}-out", n)
    assert {m.data().decode() for m in got} >= {f"a{i}!" for i in range(n)}


def test_an_input_that_kills_every_child_is_dead_lettered_and_the_rest_come_out(
    pcluster: Cluster, client: pulsar.Client
) -> None:
    # Every delivery of "boom" ends the child: each next child counts a failed attempt
    # for it (also when it dies again before it was ready), and after
    # maxMessageRetries=1 it is dead-lettered with the crash named; the inputs the dead
    # children held come out too.
    name = f"boom{uuid.uuid4().hex[:6]}"
    inp, out, dlq = f"{name}-in", f"{name}-out", f"{name}-dlq"
    res = magnetar(
        "functions", "create", "--admin-url", pcluster.workers[0].url, "--name", name,
        "--py", str(CRASHER), "--classname", "crasher_example.Crasher", "--inputs", inp, "--output", out,
        "--subs-position", "Earliest", "--max-message-retries", "1", "--dead-letter-topic", dlq,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: status(pcluster, name)["numRunning"] == 1, timeout=40), status(pcluster, name)
    produce(client, inp, ["a", "boom", "b"])
    dead: list[pulsar.Message] = []
    outputs: set[bytes] = set()
    deadline = time.monotonic() + 90
    while not (dead and {b"a!", b"b!"} <= outputs) and time.monotonic() < deadline:
        if not dead:
            dead = consume(client, dlq, 1, timeout=0.5, sub="dlq")
        outputs |= {m.data() for m in consume(client, out, 2, timeout=0.5, sub="out")}
    st = instance(pcluster, name, 0)
    assert [m.data() for m in dead] == [b"boom"], (outputs, st)
    assert "exited with code 1 while processing this message" in dead[0].properties()["__pfn_error__"]
    assert {b"a!", b"b!"} <= outputs, st
    assert b"boom!" not in outputs
    assert wait_until(lambda: instance(pcluster, name, 0)["running"], timeout=30)
    assert 1 <= instance(pcluster, name, 0)["numRestarts"] <= 3


def test_stop_and_delete_end_the_child_processes(pcluster: Cluster) -> None:
    name = f"gone{uuid.uuid4().hex[:6]}"
    create(pcluster, name, f"{name}-in", f"{name}-out", 2)
    assert wait_until(lambda: status(pcluster, name)["numRunning"] == 2, timeout=40)
    fqfn = f"public/default/{name}"

    def mine() -> dict[tuple[str, int], int]:
        out = {}
        for w in pcluster.workers:
            out.update({k: v for k, v in children(w.proc.pid).items() if k[0] == fqfn})
        return out

    assert len(mine()) == 2
    rest(pcluster.workers[0].url, "POST", f"/admin/v3/functions/{fqfn}/1/stop")
    assert wait_until(lambda: list(mine()) == [(fqfn, 0)], timeout=20), mine()
    rest(pcluster.workers[1].url, "DELETE", f"/admin/v3/functions/{fqfn}")
    assert wait_until(lambda: not mine(), timeout=20), mine()


def test_children_do_not_outlive_a_killed_worker(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> None:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("orphans")), 1, ["--runtime", "process"])
    try:
        name = f"orph{uuid.uuid4().hex[:6]}"
        create(c, name, f"{name}-in", f"{name}-out", 2)
        assert wait_until(lambda: status(c, name)["numRunning"] == 2, timeout=40)
        pids = list(children(c.workers[0].proc.pid).values())
        assert len(pids) == 2
        c.kill(c.workers[0])

        def gone() -> bool:
            return not any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in pids)

        assert wait_until(gone, timeout=15), [(_state(p), p) for p in pids]
    finally:
        c.stop_all()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
