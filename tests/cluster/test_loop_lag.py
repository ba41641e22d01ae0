"""The worker's event loop never blocks, even while one of its child processes hangs."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, new_cluster, rest, wait_until
from tests.cluster.test_cluster import create, status
from tests.cluster.test_process_runtime import children

PARALLELISM = 8
ROUNDS = 20
LIMIT_MS = 50.0
LAG = "magnetar_worker_event_loop_lag_ms"


@pytest.fixture(scope="module")
def lone_worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("looplag")), 1, ["--runtime", "process"])
    yield c
    c.stop_all()


def _prometheus_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} missing from /metrics")


def _scrape(url: str, fqfn: str) -> None:
    rest(url, "GET", "/metrics")
    rest(url, "GET", f"/admin/v3/functions/{fqfn}/status")
    rest(url, "GET", f"/admin/v3/functions/{fqfn}/3/status")
    rest(url, "GET", "/admin/v2/worker-stats/functionsmetrics")
    rest(url, "GET", "/admin/v2/worker-stats/metrics")


def test_scrapes_do_not_block_the_loop_while_an_instance_hangs(lone_worker: Cluster) -> None:
    worker = lone_worker.workers[0]
    name = f"lag{uuid.uuid4().hex[:6]}"
    fqfn = f"public/default/{name}"
    create(lone_worker, name, f"{name}-in", f"{name}-out", PARALLELISM)
    assert wait_until(
        lambda: status(lone_worker, name)["numRunning"] == PARALLELISM, timeout=180, interval=0.5
    ), status(lone_worker, name)
    pids = {k: v for k, v in children(worker.proc.pid).items() if k[0] == fqfn}
    assert len(pids) == PARALLELISM
    hung = pids[(fqfn, 3)]

    def lag_now() -> float:
        return float(rest(worker.url, "GET", "/admin/v2/worker-stats/metrics")[0]["metrics"][LAG])

    # What is measured is whether the worker's own code blocks its loop, not how the
    # kernel shares two cores among everything else on the machine: the worker's threads
    # get a higher priority than the rest (the test runs as root, as CI does).
    for tid in os.listdir(f"/proc/{worker.proc.pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(tid), -10)
    # One round of every scrape first, so one-time work (first calls on each channel,
    # first renderings) is not what the rounds below measure.
    _scrape(worker.url, fqfn)
    # Starting eight children on a busy machine delays the loop now and then; what is
    # measured is the scraping below, so first let the start-up leave the lag window.
    assert wait_until(lambda: lag_now() < LIMIT_MS / 2, timeout=60, interval=0.5), lag_now()
    os.kill(hung, signal.SIGSTOP)
    try:
        lags: list[float] = []
        hung_answers: list[float] = []
        for _ in range(ROUNDS):
            text = rest(worker.url, "GET", "/metrics").decode()
            assert text.count(f'fqfn="{fqfn}"') >= PARALLELISM  # every instance is rendered
            lags.append(_prometheus_value(text, LAG))
            whole = rest(worker.url, "GET", f"/admin/v3/functions/{fqfn}/status")
            assert whole["numInstances"] == PARALLELISM
            t0 = time.perf_counter()
            st = rest(worker.url, "GET", f"/admin/v3/functions/{fqfn}/3/status")
            hung_answers.append(time.perf_counter() - t0)
            assert not st["running"] and "not answering" in st["error"], st
            per_instance = rest(worker.url, "GET", "/admin/v2/worker-stats/functionsmetrics")
            assert len([m for m in per_instance if m["name"] == fqfn]) == PARALLELISM
            stats = rest(worker.url, "GET", "/admin/v2/worker-stats/metrics")[0]["metrics"]
            lags.append(stats[LAG])
        assert max(hung_answers) < 1.0, hung_answers
        # The probe measures (a running loop always wakes a little late) and the loop
        # never stalled: each reading is the largest lag of the last 5 s, and a round
        # takes about 2 s, so together they cover every scrape above.
        assert all(lag > 0 for lag in lags), lags
        assert max(lags) < LIMIT_MS, lags
        print(
            f"\nloop lag over {ROUNDS} scrape rounds: max {max(lags):.1f} ms; "
            f"hung instance status in at most {max(hung_answers) * 1000:.0f} ms"
        )
    finally:
        os.kill(hung, signal.SIGCONT)
    assert wait_until(lambda: rest(worker.url, "GET", f"/admin/v3/functions/{fqfn}/3/status")["running"])
