"""Clusters of real worker processes on the session's broker, each in its own topic namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from engine.broker import EmbeddedBroker, free_port

#: Starts a command that dies with this test process (see tests/cluster/deathsig_exec.py).
DEATHSIG_EXEC = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "deathsig_exec.py")]


@dataclass
class WorkerProc:
    worker_id: str
    port: int
    proc: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    broker_url: str
    namespace: str
    data_root: str
    workers: list[WorkerProc] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)

    def start_worker(self, worker_id: str) -> WorkerProc:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "engine",
            "worker",
            "--broker-url",
            self.broker_url,
            "--broker-kind",
            "pulsar-lite",
            "--worker-id",
            worker_id,
            "--port",
            str(port),
            "--data-dir",
            os.path.join(self.data_root, worker_id),
            "--functions-namespace",
            self.namespace,
            "--heartbeat-interval",
            "0.3",
            "--election-timeout",
            "3",
            *self.extra_args,
        ]
        log = open(os.path.join(self.data_root, f"{worker_id}.log"), "w")
        proc = subprocess.Popen(
            [*DEATHSIG_EXEC, str(os.getpid()), *cmd], stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready on" in line, f"{worker_id} did not start: {line!r}; see {log.name}"
        w = WorkerProc(worker_id, port, proc)
        self.workers.append(w)
        return w

    def live(self) -> list[WorkerProc]:
        return [w for w in self.workers if w.alive()]

    def kill(self, worker: WorkerProc) -> None:
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)

    def stop_all(self) -> None:
        for w in self.workers:
            if w.alive():
                w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            try:
                w.proc.wait(20)
            except subprocess.TimeoutExpired:
                w.proc.kill()

    def leader(self, via: WorkerProc | None = None) -> dict[str, Any] | None:
        for w in [via] if via else self.live():
            try:
                return rest(w.url, "GET", "/admin/v2/worker/cluster/leader")  # type: ignore[no-any-return]
            except RestError:
                continue
        return None


class RestError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def rest(base: str, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            if resp.headers.get_content_type() == "application/json":
                return orjson.loads(raw) if raw else None
            return raw
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            reason = orjson.loads(raw).get("reason", "")
        except orjson.JSONDecodeError:
            reason = raw.decode(errors="replace")
        raise RestError(exc.code, reason) from None


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (RestError, OSError):
            last = None
        if last:
            return last
        time.sleep(interval)
    return last


def magnetar(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout
    )


def new_cluster(broker: EmbeddedBroker, tmp: str, n: int, extra_args: list[str] | None = None) -> Cluster:
    cluster = Cluster(broker.url, f"public/fn{uuid.uuid4().hex[:8]}", tmp, extra_args=extra_args or [])
    for i in range(n):
        cluster.start_worker(f"w{i + 1}")
    assert wait_until(lambda: cluster.leader()), "no leader was elected"
    assert wait_until(lambda: len(rest(cluster.workers[0].url, "GET", "/admin/v2/worker/cluster")) == n)
    return cluster


@pytest.fixture(scope="module")
def cluster3(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("cluster3")), 3)
    yield c
    c.stop_all()
