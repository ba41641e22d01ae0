"""A full disk under the worker's data dir: 507 with a reason, nothing partial kept, then life goes on.

The data dir is on a real, small tmpfs, so the package cache write fails with the
kernel's own ENOSPC (the headroom check off), or the upload is refused before it
would leave less than the headroom free for the embedded broker.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pulsar
import pytest

from engine.broker import EmbeddedBroker, free_port
from engine.worker.disk import DiskSpace, DiskSpaceLow
from tests.cluster.conftest import magnetar, new_cluster, rest, wait_until
from tests.cluster.test_cluster import EXAMPLE, create, status
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
        # No headroom: the cache write itself meets the kernel's ENOSPC.
        cluster = new_cluster(broker, str(disk), 1, extra_args=["--disk-headroom-mb", "0"])
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


def _metric(url: str, name: str) -> float:
    for line in urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode().splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_standalone_refuses_an_upload_its_disk_has_no_room_for_and_keeps_leading(tmp_path: Path) -> None:
    """Standalone: the embedded broker's data shares the small disk with the package.

    The 40 MB upload is refused with 507 before anything is written, so the broker keeps
    room for its own writes: the worker still leads, a later create works and its messages
    flow, and /metrics shows the free space and that it is not low.
    """
    package = _big_package(tmp_path / "huge.py", 40)
    with tmpfs(tmp_path / "disk", size="24m") as disk:
        port, broker_port = free_port(), free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "standalone", "--data-dir", str(disk / "d"), "--port", str(port),
             "--broker-port", str(broker_port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        client = None
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
            assert "507" in res.stderr and "insufficient storage: no space left" in res.stderr, res.stderr
            assert "kept for the broker (--disk-headroom-mb)" in res.stderr, res.stderr
            assert took < 20, f"the refused upload took {took:.0f} s"
            assert rest(url, "GET", "/admin/v3/functions/public/default") == []  # nothing recorded
            cache = disk / "d" / "package-cache"
            assert not cache.exists() or not any(cache.iterdir())
            assert _metric(url, "magnetar_worker_data_dir_low_space") == 0
            assert _metric(url, "magnetar_worker_data_dir_free_bytes") > 20 * 2**20
            assert _metric(url, "pulsar_function_worker_is_leader") == 1
            res = magnetar(
                "functions", "create", "--admin-url", url, "--name", "small", "--py", str(EXAMPLE),
                "--classname", "exclaim_example.Exclaim", "--inputs", "small-in", "--output", "small-out",
                "--subs-position", "Earliest",
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
            small = "/admin/v3/functions/public/default/small/status"
            assert wait_until(lambda: rest(url, "GET", small)["numRunning"] == 1, timeout=30)
            client = pulsar.Client(f"pulsar://127.0.0.1:{broker_port}", operation_timeout_seconds=10)
            produce(client, "small-in", ["x", "y"])
            assert sorted(m.data() for m in consume(client, "small-out", 2)) == [b"x!", b"y!"]
            assert proc.poll() is None
        finally:
            if client is not None:
                client.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_disk_space_reserves_below_the_headroom_only(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        space = DiskSpace(str(disk))  # default: 5 % of 8 MiB
        assert space.headroom_bytes() == int(8 * 2**20 * 0.05)
        assert not space.low()
        space.reserve(4 * 2**20, "four MiB")
        with pytest.raises(DiskSpaceLow, match=r"eight MiB needs 8\.0 MB") as refused:
            space.reserve(8 * 2**20, "eight MiB")
        assert refused.value.errno == errno.ENOSPC
        (disk / "filler").write_bytes(b"\0" * (8 * 2**20 - 200 * 1024))
        assert space.low()
        assert space.free_bytes() < space.headroom_bytes()
        DiskSpace(str(disk), 0).reserve(2**30, "anything")  # 0: no check
        assert not DiskSpace(str(disk), 0).low()
        with pytest.raises(ValueError, match="disk headroom"):
            DiskSpace(str(disk), -1)


def test_a_disk_filled_from_outside_and_freed_leaves_the_worker_leading(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    """Another process fills the worker's data dir (the broker's storage is elsewhere), then frees it.

    While it is full, /metrics says so, an upload is refused with 507 and the worker keeps
    leading and serving; once the space is back the condition clears, and a create works
    and its messages flow.
    """
    package = tmp_path / "small.py"
    package.write_text(EXAMPLE.read_text())
    with tmpfs(tmp_path / "disk", size="8m") as disk:
        cluster = new_cluster(broker, str(disk), 1)
        try:
            url = cluster.workers[0].url
            assert _metric(url, "magnetar_worker_data_dir_low_space") == 0
            filler = disk / "filler"
            with open(filler, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
            assert _metric(url, "magnetar_worker_data_dir_low_space") == 1
            assert _metric(url, "magnetar_worker_data_dir_free_bytes") < 2**20
            res = magnetar(
                "functions", "create", "--admin-url", url, "--name", "full", "--py", str(package),
                "--classname", "small.Exclaim", "--inputs", "full-in", "--output", "full-out",
            )  # fmt: skip
            assert res.returncode != 0
            assert "507" in res.stderr and "kept for the broker" in res.stderr, res.stderr
            # Heartbeats go through the broker, whose disk is not full: the worker keeps leading.
            # (watched for three election timeouts: it must not step down)
            leading = "pulsar_function_worker_is_leader"
            assert not wait_until(lambda: _metric(url, leading) != 1, timeout=6)
            filler.unlink()
            assert _metric(url, "magnetar_worker_data_dir_low_space") == 0
            name = f"freed{uuid.uuid4().hex[:6]}"
            create(cluster, name, f"{name}-in", f"{name}-out", 1)
            assert wait_until(lambda: status(cluster, name)["numRunning"] == 1, timeout=30)
            produce(client, f"{name}-in", ["x", "y"])
            assert sorted(m.data() for m in consume(client, f"{name}-out", 2)) == [b"x!", b"y!"]
            assert rest(url, "GET", "/admin/v2/worker/cluster/leader")["workerId"] == "w1"
        finally:
            cluster.stop_all()
