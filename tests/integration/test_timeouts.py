"""Calls that hang: failed after timeoutMs, retried, dead-lettered; the instance goes on.

In the thread runtime the hung call is abandoned on its thread and counted; in the
process runtime the child is replaced and the input counts a failed attempt. Without
timeoutMs a long call shows in status, and a stop of a hung instance is quick and
leaves no consumer behind.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.hotpath import HotPath
from engine.instance.settlement import DLQ_ERROR_PROPERTY
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.integration import functions_under_test
from tests.integration.harness import consume, drain, produce, runner_for, wait_for

HANG_PACKAGE = Path(__file__).resolve().parent / "hang_example.py"


def test_thread_runtime_abandons_a_hung_call_and_goes_on(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "Hang",
        "inputs": [inp],
        "output": out,
        "timeoutMs": 500,
        "maxMessageRetries": 1,
        "deadLetterTopic": dlq,
    }
    with runner_for(broker.url, hot.name, data_dir, cfg) as runner:
        produce(client, inp, ["a", "hang", "b", "c"], batching=False)  # a nack redelivers one input
        got = consume(client, out, 3)
        dead = consume(client, dlq, 1)
        produce(client, inp, ["d"])  # the instance goes on after the dead letter
        assert wait_for(lambda: runner.status()[0]["numSuccessfullyProcessed"] == 4), str(runner.status())
        st = runner.status()[0]
        everything = drain(client, out)
    assert sorted(m.data() for m in got) == [b"a!", b"b!", b"c!"]
    assert sorted(m.data() for m in everything) == [b"a!", b"b!", b"c!", b"d!"]
    assert [m.data() for m in dead] == [b"hang"]
    assert "TimeoutError: process() ran over timeoutMs=500" in dead[0].properties()[DLQ_ERROR_PROPERTY]
    assert st["running"] is True
    assert st["numUserExceptions"] == 2  # the first attempt and its one retry
    assert st["numAbandonedCalls"] == 2


@pytest.fixture
def release_hangs() -> Iterator[None]:
    """Lets the abandoned calls of HangWindow/HangBatch return once the test is done."""
    functions_under_test.RELEASE_HANGS.clear()
    yield
    functions_under_test.RELEASE_HANGS.set()


def _timed_call_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("timed-call"))


def test_a_window_call_past_timeout_fails_its_inputs_and_the_instance_goes_on(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    release_hangs: None,
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "HangWindow",
        "inputs": [inp],
        "output": out,
        "windowConfig": {"windowLengthCount": 2},
        "timeoutMs": 500,
        "maxMessageRetries": 1,
        "deadLetterTopic": dlq,
    }
    with runner_for(broker.url, hot.name, data_dir, cfg) as runner:
        produce(client, inp, ["a", "b"], batching=False)
        first = consume(client, out, 1)
        produce(client, inp, ["hang", "x"], batching=False)  # one window: times out twice
        dead = consume(client, dlq, 2, timeout=30)
        produce(client, inp, ["c", "d"], batching=False)  # the instance goes on
        assert wait_for(lambda: runner.status()[0]["numSuccessfullyProcessed"] == 4), str(runner.status())
        st = runner.status()[0]
        # The abandoned calls return now: their state change is refused, so the next
        # window's commit does not carry it.
        functions_under_test.RELEASE_HANGS.set()
        assert wait_for(lambda: _timed_call_threads() == 1)  # only the current call thread is left
        produce(client, inp, ["e", "f"], batching=False)
        assert wait_for(lambda: runner.status()[0]["numSuccessfullyProcessed"] == 6), str(runner.status())
        everything = drain(client, out)
        store = runner.state_store
        assert store is not None
        assert store.get_counter(runner.spec.fqfn, "after-abandon") in (0, None)
    assert [m.data() for m in first] == [b"a+b"]
    assert [m.data() for m in everything] == [b"a+b", b"c+d", b"e+f"]
    assert sorted(m.data() for m in dead) == [b"hang", b"x"]
    for m in dead:
        assert "TimeoutError: process() ran over timeoutMs=500" in m.properties()[DLQ_ERROR_PROPERTY]
    assert st["running"] is True
    assert st["numUserExceptions"] == 4  # both inputs, on the first attempt and its one retry
    assert st["numAbandonedCalls"] == 2


def test_a_process_batch_call_past_timeout_fails_its_batch_and_the_instance_goes_on(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    release_hangs: None,
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "HangBatch",
        "inputs": [inp],
        "output": out,
        "timeoutMs": 500,
        "maxMessageRetries": 1,
        "deadLetterTopic": dlq,
    }
    with runner_for(broker.url, hot.name, data_dir, cfg) as runner:
        produce(client, inp, ["a", "b"], batching=False)
        first = consume(client, out, 2)
        produce(client, inp, ["hang"])
        dead = consume(client, dlq, 1, timeout=30)
        produce(client, inp, ["c"])  # the instance goes on
        assert wait_for(lambda: runner.status()[0]["numSuccessfullyProcessed"] == 3), str(runner.status())
        st = runner.status()[0]
        everything = drain(client, out)
    assert sorted(m.data() for m in first) == [b"a!", b"b!"]
    assert sorted(m.data() for m in everything) == [b"a!", b"b!", b"c!"]
    assert [m.data() for m in dead] == [b"hang"]
    error = dead[0].properties()[DLQ_ERROR_PROPERTY]
    assert "TimeoutError: process_batch() ran over timeoutMs=500" in error
    assert st["running"] is True
    assert st["numUserExceptions"] == 2  # the first attempt and its one retry
    assert st["numAbandonedCalls"] == 2


def test_a_long_call_shows_in_status_and_a_stop_leaves_no_consumer(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "HangOnce", "inputs": [inp], "output": out}
    first = runner_for(broker.url, hot.name, data_dir, cfg)
    first.options.instance = dataclasses.replace(first.options.instance, stall_warning_s=1.0)
    first.start()
    try:
        produce(client, inp, ["hang"])
        assert wait_for(lambda: first.status()[0]["stalled"] != "", timeout=20), first.status()
        st = first.status()[0]
        assert st["stalled"].startswith("in process() for ") and st["stalled"].endswith(" s")
        assert st["error"] == st["stalled"] and st["running"] is True
        t0 = time.monotonic()
        first.instances[0].stop()
        stop_s = time.monotonic() - t0
    finally:
        first.stop()
    assert stop_s < 3.0, f"stopping a hung instance took {stop_s:.1f} s"
    # A consumer left behind would take about half of what follows and never process it.
    with runner_for(broker.url, hot.name, data_dir, cfg):
        payloads = [f"m{i}" for i in range(40)]
        produce(client, inp, payloads)
        got = {m.data() for m in consume(client, out, 41, timeout=30)}
    assert got == {f"{p}!".encode() for p in payloads} | {b"hang!"}


@pytest.fixture(scope="module")
def process_worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("hangs")), 1, ["--runtime", "process"])
    yield c
    c.stop_all()


def _instance_status(cluster: Cluster, name: str) -> dict[str, Any]:
    st = rest(cluster.workers[0].url, "GET", f"/admin/v3/functions/public/default/{name}/status", timeout=10)
    return st["instances"][0]["status"]  # type: ignore[no-any-return]


def test_process_runtime_replaces_a_hung_child(process_worker: Cluster, client: pulsar.Client) -> None:
    name = f"hang{int(time.time() * 1000) % 10**8}"
    inp, out, dlq = f"{name}-in", f"{name}-out", f"{name}-dlq"
    res = magnetar(
        "functions", "create", "--admin-url", process_worker.workers[0].url, "--name", name,
        "--py", str(HANG_PACKAGE), "--classname", "hang_example.Hang", "--inputs", inp, "--output", out,
        "--subs-position", "Earliest", "--timeout-ms", "1000", "--max-message-retries", "1",
        "--dead-letter-topic", dlq,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: _instance_status(process_worker, name)["running"], timeout=40)
    produce(client, inp, ["a", "hang", "b", "c"])
    dead = consume(client, dlq, 1, timeout=60)
    outputs: set[bytes] = set()
    deadline = time.monotonic() + 30
    while not {b"a!", b"b!", b"c!"} <= outputs and time.monotonic() < deadline:
        outputs |= {m.data() for m in consume(client, out, 1, timeout=1, sub="out")}
    assert [m.data() for m in dead] == [b"hang"]
    error = dead[0].properties()[DLQ_ERROR_PROPERTY]
    replaced = "instance was replaced because process() ran over timeoutMs=1000"
    assert f"{replaced} while processing this message" in error
    assert {b"a!", b"b!", b"c!"} <= outputs
    st = wait_until(lambda: (s := _instance_status(process_worker, name))["running"] and s, timeout=30)
    assert st, _instance_status(process_worker, name)
    assert st["numRestarts"] >= 1
    assert st["numUserExceptions"] >= 1
    # The worker kept serving and the instance flows again.
    produce(client, inp, ["d"])
    assert wait_until(lambda: b"d!" in {m.data() for m in consume(client, out, 1, timeout=1, sub="out")}, 30)


@pytest.fixture(scope="module")
def thread_worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("hangs-thread")), 1, ["--runtime", "thread"])
    yield c
    c.stop_all()


def test_restart_of_a_hung_thread_instance_is_quick_and_leaves_no_consumer(
    thread_worker: Cluster, client: pulsar.Client, tmp_path: Path
) -> None:
    name = f"hung{int(time.time() * 1000) % 10**8}"
    inp, out = f"{name}-in", f"{name}-out"
    url = thread_worker.workers[0].url
    marker = orjson.dumps({"marker": str(tmp_path / "hung")}).decode()
    res = magnetar(
        "functions", "create", "--admin-url", url, "--name", name,
        "--py", str(HANG_PACKAGE), "--classname", "hang_example.HangOnce", "--inputs", inp, "--output", out,
        "--subs-position", "Earliest", "--user-config", marker,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: _instance_status(thread_worker, name)["running"], timeout=40)
    produce(client, inp, ["hang"])
    assert wait_until(lambda: (tmp_path / "hung").exists(), timeout=20)
    t0 = time.monotonic()
    rest(url, "POST", f"/admin/v3/functions/public/default/{name}/restart", timeout=30)
    restart_s = time.monotonic() - t0
    assert restart_s < 5.0, f"restarting a hung instance took {restart_s:.1f} s"
    assert wait_until(lambda: _instance_status(thread_worker, name)["running"], timeout=30)
    # A consumer left behind would take about half of these and never process them.
    payloads = [f"m{i}" for i in range(40)]
    produce(client, inp, payloads)
    got = {m.data() for m in consume(client, out, 41, timeout=30)}
    assert got == {f"{p}!".encode() for p in payloads} | {b"hang!"}
    assert rest(url, "GET", "/admin/v2/worker/cluster/leader")  # the worker still serves
