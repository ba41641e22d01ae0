"""Losing the leader while a stream flows: a new leader within 5 s, instances moved, stream processed.

SIGKILL: the new leader and the rescheduling are asserted, and so is that every message
sent after the failover is processed. Messages that were in flight at the killed worker
are counted and reported rather than asserted: pulsar-lite 0.2.0 sometimes never
redelivers messages it had handed to a consumer that was killed (reproduced without
Magnetar in ``bench/repro/shared_consumer_kill.py``). SIGTERM: a clean leader shutdown
must lose nothing at all.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pulsar

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, WorkerProc, new_cluster, rest, wait_until
from tests.cluster.test_cluster import all_running, create
from tests.integration.harness import consume


class Stream:
    """Sends ``m0 .. m{total-1}`` at ``rate`` per second on a thread, remembering send times."""

    def __init__(self, client: pulsar.Client, topic: str, total: int, rate: int) -> None:
        self.client, self.topic, self.total, self.rate = client, topic, total, rate
        self.sent_at: list[float] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        producer = self.client.create_producer(
            self.topic, block_if_queue_full=True, batching_enabled=True, batching_max_publish_delay_ms=5
        )
        start = time.monotonic()
        for i in range(self.total):
            producer.send_async(f"m{i}".encode(), None)
            self.sent_at.append(time.monotonic())
            if i % 200 == 199:
                producer.flush()
                delay = start + (i + 1) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        producer.flush()
        producer.close()


def _leader_change(cluster: Cluster, victim: WorkerProc, survivor: WorkerProc, old: dict[str, Any]) -> float:
    t0 = time.monotonic()

    def new_leader() -> bool:
        leader = rest(survivor.url, "GET", "/admin/v2/worker/cluster/leader", timeout=2)
        return bool(leader["workerId"] != victim.worker_id and leader["epoch"] > old["epoch"])

    assert wait_until(new_leader, timeout=30, interval=0.05), "no new leader"
    return time.monotonic() - t0


def _run_failover(broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path, sig: int) -> dict[str, Any]:
    cluster = new_cluster(broker, str(tmp_path), 3)
    try:
        name = f"fo{uuid.uuid4().hex[:6]}"
        inp, out = f"{name}-in", f"{name}-out"
        create(cluster, name, inp, out, 3)
        assert wait_until(lambda: all_running(cluster, name, 3), timeout=30)
        stream = Stream(client, inp, total=12000, rate=2000)
        stream.thread.start()
        time.sleep(2)
        old = cluster.leader()
        assert old is not None
        victim = next(w for w in cluster.workers if w.worker_id == old["workerId"])
        survivor = next(w for w in cluster.workers if w is not victim)
        killed_at = time.monotonic()
        victim.proc.send_signal(sig)
        failover_s = _leader_change(cluster, victim, survivor, old)

        def moved() -> bool:
            placed = rest(survivor.url, "GET", "/admin/v2/worker/assignments", timeout=2)
            return victim.worker_id not in placed and sum(len(v) for v in placed.values()) == 3

        assert wait_until(moved, timeout=15, interval=0.1), "the lost worker's instances were not moved"
        moved_at = time.monotonic()
        assert wait_until(lambda: all_running(cluster, name, 3), timeout=30), rest(
            survivor.url, "GET", f"/admin/v3/functions/public/default/{name}/status"
        )
        stream.thread.join()
        got = consume(client, out, stream.total, timeout=60)
        bodies = {m.data().decode() for m in got}
        missing = [i for i in range(stream.total) if f"m{i}!" not in bodies]
        after = [i for i in missing if stream.sent_at[i] > moved_at + 0.5]
        assert after == [], f"{len(after)} messages sent after the failover were never processed"
        return {
            "failover_s": failover_s,
            "moved_s": moved_at - killed_at,
            "missing": len(missing),
            "outputs": len(got),
            "total": stream.total,
        }
    finally:
        cluster.stop_all()


def test_leader_sigkill_new_leader_within_5s(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    result = _run_failover(broker, client, tmp_path, signal.SIGKILL)
    print(
        f"\nSIGKILL failover: new leader after {result['failover_s']:.2f} s, instances moved after "
        f"{result['moved_s']:.2f} s; {result['outputs']} outputs for {result['total']} inputs, "
        f"{result['missing']} never redelivered by the broker"
    )
    assert result["failover_s"] < 5.0
    assert result["missing"] <= 1000, "more than the killed worker can have held in flight"


def test_leader_sigterm_loses_nothing(broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path) -> None:
    result = _run_failover(broker, client, tmp_path, signal.SIGTERM)
    # A clean stop settles the leader's own instances before it leaves the election, so
    # the hand-over takes longer than after a crash; what matters here is that nothing is lost.
    print(f"\nSIGTERM failover: new leader after {result['failover_s']:.2f} s, {result['missing']} missing")
    assert result["missing"] == 0


def test_joining_worker_gets_a_share_and_drain_moves_it_back(broker: EmbeddedBroker, tmp_path: Path) -> None:
    cluster = new_cluster(broker, str(tmp_path), 2)
    try:
        name = f"join{uuid.uuid4().hex[:6]}"
        create(cluster, name, f"{name}-in", f"{name}-out", 4)
        assert wait_until(lambda: all_running(cluster, name, 4), timeout=30)
        newcomer = cluster.start_worker("w-new")

        def has_share() -> bool:
            placed = rest(newcomer.url, "GET", "/admin/v2/worker/assignments")
            return len(placed.get("w-new", [])) >= 1 and max(len(v) for v in placed.values()) <= 2

        assert wait_until(has_share, timeout=20), rest(newcomer.url, "GET", "/admin/v2/worker/assignments")
        assert wait_until(lambda: all_running(cluster, name, 4), timeout=30)
        res = rest(cluster.workers[0].url, "PUT", "/admin/v2/worker/leader/drain?workerId=w-new")
        assert res["status"] == "DrainCompleted"
        assert wait_until(
            lambda: "w-new" not in rest(cluster.workers[0].url, "GET", "/admin/v2/worker/assignments")
        )
        assert wait_until(lambda: all_running(cluster, name, 4), timeout=30)
    finally:
        cluster.stop_all()
