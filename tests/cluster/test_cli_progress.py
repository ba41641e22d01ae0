"""Progress of long CLI work against a real cluster: package upload and download, drain, rebalance."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import orjson

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import magnetar, new_cluster, rest, wait_until
from tests.cluster.test_cluster import all_running, create


def test_upload_download_drain_and_rebalance_show_progress(broker: EmbeddedBroker, tmp_path: Path) -> None:
    cluster = new_cluster(broker, str(tmp_path), 2)
    try:
        admin = ("--admin-url", cluster.workers[0].url)
        package = tmp_path / "big.zip"
        package.write_bytes(os.urandom(3 * 1024 * 1024))

        up = magnetar("functions", "upload", "--source-file", str(package), "--output", "json", *admin)
        assert up.returncode == 0, up.stderr
        path = orjson.loads(up.stdout)["path"]  # progress stays off stdout: it parses as JSON
        lines = up.stderr.splitlines()
        percents = [int(ln.split(":")[1].split("%")[0]) for ln in lines]
        assert len(lines) >= 4 and percents == sorted(percents) and percents[0] < 50, lines
        assert lines[-1].startswith("uploading big.zip: 100% (3.0 MiB of 3.0 MiB) — done in"), lines

        dest = tmp_path / "back.zip"
        down = magnetar("functions", "download", "--path", path, "--destination-file", str(dest), *admin)
        assert down.returncode == 0, down.stderr
        assert dest.read_bytes() == package.read_bytes()
        assert f"downloading to {dest}: 100% (3.0 MiB of 3.0 MiB) — done in" in down.stderr, down.stderr

        name = f"pg{uuid.uuid4().hex[:6]}"
        create(cluster, name, f"{name}-in", f"{name}-out", 4)
        assert wait_until(lambda: all_running(cluster, name, 4), timeout=40)
        on_w2 = len(rest(cluster.workers[0].url, "GET", "/admin/v2/worker/assignments").get("w2", []))
        assert on_w2 >= 1
        drain = magnetar("functions-worker", "drain", "--worker-id", "w2", *admin)
        assert drain.returncode == 0, drain.stderr
        assert f"draining w2: 100% ({on_w2} instances moved of {on_w2} instances moved)" in drain.stderr
        assert "DrainCompleted" in drain.stdout
        assert rest(cluster.workers[0].url, "GET", "/admin/v2/worker/assignments").get("w2", []) == []

        bad = magnetar("functions", "upload", "--source-file", str(tmp_path / "missing.zip"), *admin)
        assert bad.returncode != 0 and "--source-file" in bad.stderr and "no such file" in bad.stderr
    finally:
        cluster.stop_all()
