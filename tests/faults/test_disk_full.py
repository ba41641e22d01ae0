"""A full disk under the worker's data dir: 507 with a reason, nothing partial kept, then life goes on.

The data dir is on a real, small tmpfs, so the package cache write fails with the
kernel's own ENOSPC.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pulsar

from engine.broker import EmbeddedBroker
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
