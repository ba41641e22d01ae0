"""Safe by default: loopback only without authentication, no foreign Host or Origin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, new_cluster
from tests.security.conftest import call, create_function, unique


def test_non_loopback_host_is_refused_without_authentication(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine", "standalone", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--host 0.0.0.0" in out.stderr and "--allow-unauthenticated-remote" in out.stderr


def test_foreign_origin_creates_nothing(worker1: Cluster) -> None:
    port, name = worker1.workers[0].port, unique("csrf")
    ans = create_function(port, name, headers={"Origin": "http://evil.example"})
    assert ans.status == 403 and "Origin" in ans.reason
    assert call(port, "GET", f"/admin/v3/functions/public/default/{name}").status == 404
    ans = create_function(port, name, headers={"Origin": "null"})
    assert ans.status == 403
    # The worker's own origin (its dashboard) is served.
    ans = create_function(port, name, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert ans.status == 200, ans.body


def test_foreign_host_is_refused(worker1: Cluster) -> None:
    port = worker1.workers[0].port
    ans = call(port, "GET", "/admin/v3/functions/public/default", headers={"Host": f"evil.example:{port}"})
    assert ans.status == 403 and "Host" in ans.reason
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert call(port, "GET", "/admin/v3/functions/public/default", headers={"Host": host}).status == 200


def test_configured_hosts_and_limits(broker: EmbeddedBroker, tmp_path: Path) -> None:
    extra = ["--allowed-hosts", "magnetar.internal,other.lan", "--max-parallelism", "3",
             "--max-instances-per-tenant", "4"]  # fmt: skip
    c = new_cluster(broker, str(tmp_path), 1, extra_args=extra)
    try:
        port = c.workers[0].port
        path = "/admin/v3/functions/public/default"
        assert call(port, "GET", path, headers={"Host": f"magnetar.internal:{port}"}).status == 200
        assert call(port, "GET", path, headers={"Host": "OTHER.lan"}).status == 200
        assert call(port, "GET", path, headers={"Host": "evil.example"}).status == 403
        ans = create_function(port, unique("big"), parallelism=4)
        assert ans.status == 400 and "maxParallelism is 3" in ans.reason
        assert create_function(port, unique("a"), parallelism=3).status == 200
        ans = create_function(port, unique("b"), parallelism=2)
        assert ans.status == 400 and "maxInstancesPerTenant is 4" in ans.reason and "has 3" in ans.reason
        assert create_function(port, unique("c"), parallelism=1).status == 200
        assert create_function(port, unique("d"), tenant="other", parallelism=3).status == 200
    finally:
        c.stop_all()


def test_remote_listening_when_told(broker: EmbeddedBroker, tmp_path: Path) -> None:
    c = new_cluster(
        broker, str(tmp_path), 1, extra_args=["--host", "0.0.0.0", "--allow-unauthenticated-remote"]
    )
    try:
        port = c.workers[0].port
        path = "/admin/v3/functions/public/default"
        # Listening on every address by choice: direct connections by IP are served, but a
        # foreign name (DNS rebinding) and a foreign Origin are still refused.
        assert call(port, "GET", path, headers={"Host": f"10.1.2.3:{port}"}).status == 200
        assert call(port, "GET", path, headers={"Host": "evil.example"}).status == 403
        assert create_function(port, unique("o"), headers={"Origin": "http://evil.example"}).status == 403
    finally:
        c.stop_all()
