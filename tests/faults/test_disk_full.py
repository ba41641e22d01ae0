"""A full disk under the worker's data dir: 507 with a reason, nothing partial kept, then life goes on.

The data dir is on a real, small tmpfs, so the package cache write fails with the
kernel's own ENOSPC.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pulsar

from engine.broker import EmbeddedBroker, free_port
from tests.cluster.conftest import magnetar, new_cluster, rest, wait_until
from tests.cluster.test_cluster import create, status
from tests.faults.mounts import tmpfs
from tests.integration.harness import consume, produce


def _big_package(path: Path, megabytes: int) -> Path:
    filler = ("# " + "x" * 97 + "\n") * 10_000  # about 1 MB of comment
    body = filler * megabytes + "from pulsar import Function\n\n\nclass Big(Function):\n"
    path.write_text(body + "    def process(self, input, context):\n        return input\n")
    return path


def test_a_full_disk_answers_507_and_keeps_nothing_partial(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    package = _big_package(tmp_path / "big.py", 12)
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        cluster = new_cluster(broker, str(disk), 1)
        try:
            url = cluster.workers[0].url
            res = magnetar(
                "functions", "create", "--admin-url", url, "--name", "big", "--py", str(package),
                "--classname", "big.Big", "--inputs", "big-in", "--output", "big-out",
            )  # fmt: skip
            assert res.returncode != 0
            assert "507" in res.stderr and "insufficient storage: no space left" in res.stderr, res.stderr
            cache = disk / "w1" / "package-cache"
            left = [os.path.join(d, f) for d, _, files in os.walk(cache) for f in files]
            assert left == [], left  # no partial package
            assert not cache.exists() or not any(cache.iterdir())  # nor the directory made for it
            # The space is back, so a later create works, and the worker still leads and runs it.
            name = f"after{uuid.uuid4().hex[:6]}"
            create(cluster, name, f"{name}-in", f"{name}-out", 1)
            assert wait_until(lambda: status(cluster, name)["numRunning"] == 1, timeout=30), status(
                cluster, name
            )
            produce(client, f"{name}-in", ["x", "y"])
            assert sorted(m.data() for m in consume(client, f"{name}-out", 2)) == [b"x!", b"y!"]
            leader = rest(url, "GET", "/admin/v2/worker/cluster/leader")
            assert leader["workerId"] == "w1"
        finally:
            cluster.stop_all()


def test_a_full_broker_disk_fails_the_upload_fast_with_a_reason(tmp_path: Path) -> None:
    """Standalone: the embedded broker's data is on the full disk too, so the package's parts fail.

    The upload answers 503 naming the cause within its deadline instead of hanging, and
    the worker keeps serving. (pulsar-lite corrupts its entry log when its disk fills,
    "entrylog position does not match index", so its topics, and with them the worker's
    leadership, do not come back when space does; that is the broker's fault.)
    """
    package = _big_package(tmp_path / "huge.py", 40)
    with tmpfs(tmp_path / "disk", size="24m") as disk:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "standalone", "--data-dir", str(disk / "d"), "--port", str(port),
             "--broker-port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert "ready on" in proc.stdout.readline()
            url = f"http://127.0.0.1:{port}"
            t0 = time.monotonic()
            res = magnetar(
                "functions", "create", "--admin-url", url, "--name", "huge", "--py", str(package),
                "--classname", "huge.Big", "--inputs", "huge-in", "--output", "huge-out",
            )  # fmt: skip
            took = time.monotonic() - t0
            assert res.returncode != 0
            assert "503: the broker did not store the package" in res.stderr, res.stderr
            assert "nothing was recorded" in res.stderr
            assert took < 50, f"the failed upload took {took:.0f} s"
            assert (
                rest(url, "GET", "/admin/v3/functions/public/default") == []
            )  # still serving; nothing recorded
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
