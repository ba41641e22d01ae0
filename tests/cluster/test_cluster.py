"""A cluster of three real worker processes on one broker: spreading, control, updates, conflicts, CLI."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pulsar

from tests.cluster.conftest import Cluster, RestError, magnetar, rest, wait_until
from tests.integration.harness import consume, produce

EXAMPLE = Path(__file__).resolve().parents[1] / "integration" / "exclaim_example.py"


def create(cluster: Cluster, name: str, inp: str, out: str, parallelism: int, via: int = 0) -> None:
    res = magnetar(
        "functions", "create", "--admin-url", cluster.workers[via].url, "--name", name,
        "--py", str(EXAMPLE), "--classname", "exclaim_example.Exclaim", "--inputs", inp, "--output", out,
        "--parallelism", str(parallelism), "--subs-position", "Earliest",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


def status(cluster: Cluster, name: str, via: int = 0) -> dict[str, Any]:
    live = cluster.live()
    url = live[via % len(live)].url
    return rest(url, "GET", f"/admin/v3/functions/public/default/{name}/status", timeout=10)  # type: ignore[no-any-return]


def all_running(cluster: Cluster, name: str, n: int) -> bool:
    st = status(cluster, name)
    return st["numRunning"] == n


def test_parallelism_spreads_over_the_workers(cluster3: Cluster, client: pulsar.Client) -> None:
    name = f"spread{uuid.uuid4().hex[:6]}"
    inp, out = f"{name}-in", f"{name}-out"
    create(cluster3, name, inp, out, 3, via=1)  # any worker accepts, the leader writes
    assert wait_until(lambda: all_running(cluster3, name, 3), timeout=30), status(cluster3, name)
    owners = {i["status"]["workerId"] for i in status(cluster3, name)["instances"]}
    assert owners == {"w1", "w2", "w3"}
    n = 6000  # more than one receiver queue (1,000), so the broker spreads them
    produce(client, inp, [f"m{i}" for i in range(n)])
    got = consume(client, out, n)
    assert sorted(m.data().decode() for m in got) == sorted(f"m{i}!" for i in range(n))
    per_instance = [i["status"]["numReceived"] for i in status(cluster3, name, via=2)["instances"]]
    assert sum(per_instance) >= n and sum(1 for c in per_instance if c > 0) >= 2, per_instance


def test_stop_start_restart_one_instance(cluster3: Cluster) -> None:
    name = f"ctl{uuid.uuid4().hex[:6]}"
    create(cluster3, name, f"{name}-in", f"{name}-out", 2)
    assert wait_until(lambda: all_running(cluster3, name, 2), timeout=30)
    base = f"/admin/v3/functions/public/default/{name}"
    res = magnetar(
        "functions", "stop", "--admin-url", cluster3.workers[2].url, "--name", name, "--instance-id", "1"
    )
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: not status(cluster3, name)["instances"][1]["status"]["running"])
    assert status(cluster3, name)["instances"][0]["status"]["running"]
    # The stop is recorded in the metadata, so it survives; start brings it back.
    rest(cluster3.workers[0].url, "POST", base + "/1/start")
    assert wait_until(lambda: all_running(cluster3, name, 2))
    before = status(cluster3, name)["instances"][0]["status"]
    rest(cluster3.workers[1].url, "POST", base + "/0/restart")  # proxied to the owner when remote
    after = rest(cluster3.workers[2].url, "GET", base + "/0/status")
    assert after["running"] and after["workerId"] == before["workerId"]


def test_update_code_and_config_while_messages_flow(
    cluster3: Cluster, client: pulsar.Client, tmp_path: Path
) -> None:
    name = f"upd{uuid.uuid4().hex[:6]}"
    inp, out = f"{name}-in", f"{name}-out"
    create(cluster3, name, inp, out, 2)
    assert wait_until(lambda: all_running(cluster3, name, 2), timeout=30)
    updated = threading.Event()
    sent: list[int] = []

    def stream() -> None:
        # Keep the stream going until the new version runs, and 300 messages past that,
        # so some inputs are certainly processed by the new code.
        producer = client.create_producer(inp, block_if_queue_full=True, batching_enabled=True)
        i = 0
        after_update = 0
        while i < 3000 or after_update < 300:
            producer.send_async(f"m{i}".encode(), None)
            i += 1
            if updated.is_set():
                after_update += 1
            if i % 100 == 0:
                producer.flush()
                threading.Event().wait(0.02)
        producer.flush()
        producer.close()
        sent.append(i)

    t = threading.Thread(target=stream)
    t.start()
    v2 = tmp_path / "exclaim_example.py"
    v2.write_text(EXAMPLE.read_text().replace('input + "!"', 'input + "?"'))
    res = magnetar("functions", "update", "--admin-url", cluster3.workers[1].url, "--name", name,
                   "--py", str(v2), "--parallelism", "3")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: all_running(cluster3, name, 3), timeout=30)
    updated.set()
    t.join()
    (total,) = sent
    got = consume(client, out, total, timeout=60)
    bodies = {m.data().decode() for m in got}
    missing = [i for i in range(total) if f"m{i}!" not in bodies and f"m{i}?" not in bodies]
    assert missing == [], f"{len(missing)} inputs never produced an output"
    assert any(b.endswith("?") for b in bodies), "the new code ran"
    assert wait_until(lambda: all_running(cluster3, name, 3), timeout=30)
    cfg = rest(cluster3.workers[2].url, "GET", f"/admin/v3/functions/public/default/{name}")
    assert cfg["parallelism"] == 3


def test_concurrent_updates_one_wins_the_rest_conflict(cluster3: Cluster) -> None:
    name = f"race{uuid.uuid4().hex[:6]}"
    create(cluster3, name, f"{name}-in", f"{name}-out", 1)
    path = f"/admin/v3/functions/public/default/{name}"
    version = rest(cluster3.workers[0].url, "GET", "/admin/v2/worker/assignments")  # warm up connections
    assert version is not None
    results: list[Any] = []
    barrier = threading.Barrier(6)

    def update(i: int) -> None:
        import aiohttp  # noqa: F401  (the workers use it; here plain urllib is enough)

        barrier.wait()
        try:
            results.append(rest(cluster3.workers[i % 3].url, "PUT", path,
                                {"functionConfig": {"userConfig": {"writer": i}}}))  # fmt: skip
        except RestError as exc:
            results.append(exc)

    threads = [threading.Thread(target=update, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = [r for r in results if not isinstance(r, RestError)]
    conflicts = [r for r in results if isinstance(r, RestError)]
    assert len(ok) >= 1 and all(c.status == 409 for c in conflicts), results
    assert len({r["version"] for r in ok}) == len(ok)  # every success is its own version


def test_rest_errors_are_json_with_fitting_codes(cluster3: Cluster) -> None:
    url = cluster3.workers[0].url
    for method, path, status_code, text in (
        ("GET", "/admin/v3/functions/public/default/nope", 404, "doesn't exist"),
        ("DELETE", "/admin/v3/functions/public/default/nope", 404, "doesn't exist"),
        ("POST", "/admin/v3/functions/public/default/bad", 400, "className"),
    ):
        try:
            rest(url, method, path, {"functionConfig": {"inputs": ["x"]}} if method == "POST" else None)
        except RestError as exc:
            assert exc.status == status_code and text in exc.reason, (path, exc)
        else:
            raise AssertionError(f"{method} {path} should fail")
    assert rest(url, "GET", "/initialized") == b""
    assert rest(url, "GET", "/admin/v2/worker/cluster/leader/ready") is True


def test_cli_verbs(cluster3: Cluster, client: pulsar.Client, tmp_path: Path) -> None:
    name = f"cli{uuid.uuid4().hex[:6]}"
    inp, out = f"{name}-in", f"{name}-out"
    admin = ["--admin-url", cluster3.workers[0].url]
    create(cluster3, name, inp, out, 1)
    assert wait_until(lambda: all_running(cluster3, name, 1), timeout=30)

    def ok(*args: str) -> str:
        res = magnetar(*args, *admin)
        assert res.returncode == 0, (args, res.stderr)
        return res.stdout

    assert name in ok("functions", "list")
    assert '"className": "exclaim_example.Exclaim"' in ok("functions", "get", "--name", name)
    assert "RUNNING" in ok("functions", "status", "--name", name, "--output", "table")
    assert ok("functions", "trigger", "--name", name, "--trigger-value", "hey").strip() == "hey!"
    assert "RECEIVED" in ok("functions", "stats", "--name", name, "--output", "table")
    assert '"numRunning": 1' in ok("functions", "status", "--name", name, "--output", "json")
    ok("functions", "putstate", "--name", name, "--state", '{"key": "k1", "stringValue": "v1"}')
    assert "v1" in ok("functions", "querystate", "--name", name, "-k", "k1")
    ok("functions", "download", "--name", name, "--destination-file", str(tmp_path / "pkg.py"))
    assert (tmp_path / "pkg.py").read_text() == EXAMPLE.read_text()
    uploaded = ok("functions", "upload", "--source-file", str(EXAMPLE), "--output", "json")
    assert "magnetar-package://" in uploaded
    assert "w1" in ok("functions-worker", "get-cluster")
    assert "LEADER" in ok("functions-worker", "get-cluster-leader")
    assert f"public/default/{name}:0" in ok("functions-worker", "get-function-assignments")
    assert "pulsar_function_worker_instance_count" in ok("functions-worker", "monitoring-metrics")
    ok("functions-worker", "function-stats")
    ok("functions-worker", "rebalance")
    ok("functions", "restart", "--name", name)
    ok("functions", "delete", "--name", name)
    res = magnetar("functions", "get", "--name", name, *admin)
    assert res.returncode == 1 and "doesn't exist" in res.stderr and res.stderr.count("\n") == 1
    metrics = rest(cluster3.workers[0].url, "GET", "/metrics").decode()
    assert "pulsar_function_worker_is_leader" in metrics
