"""Authentication, authorization and TLS on a real two-worker cluster: forwarded calls between
workers carry the worker's own token over HTTPS, and grants reach every worker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulsar
import pytest

from engine.broker import EmbeddedBroker, free_port
from engine.proto import Function_pb2 as pb
from tests.auth_support import AuthSetup, auth_setup, call
from tests.cluster.conftest import Cluster, wait_until

EXAMPLE = Path(__file__).parent.parent / "integration" / "exclaim_example.py"


@dataclass
class SecureCluster:
    cluster: Cluster
    setup: AuthSetup
    https: dict[str, str]

    def call(
        self, worker: str, method: str, path: str, role: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        token = self.setup.tokens[role] if role else None
        return call(self.https[worker], method, path, token, body, self.setup.ssl_context())

    def leader_id(self) -> str | None:
        for worker in self.https:
            status, body = self.call(worker, "GET", "/admin/v2/worker/cluster/leader", "admin")
            if status == 200:
                return str(body["workerId"])
        return None


@pytest.fixture(scope="module")
def secure(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    tmp = tmp_path_factory.mktemp("auth-cluster")
    setup = auth_setup(tmp)
    config = setup.worker_config(tmp / "functions_worker.yml", {"authenticateMetricsEndpoint": True})
    cluster = Cluster(broker.url, f"public/fn{uuid.uuid4().hex[:8]}", str(tmp))
    https: dict[str, str] = {}
    try:
        for worker_id in ("w1", "w2"):
            tls_port = free_port()
            cluster.extra_args = ["--config", str(config), "--workerPortTls", str(tls_port)]
            cluster.start_worker(worker_id)
            https[worker_id] = f"https://127.0.0.1:{tls_port}"
        secure = SecureCluster(cluster, setup, https)
        assert wait_until(secure.leader_id), "no leader was elected"
        assert wait_until(lambda: len(secure.call("w1", "GET", "/admin/v2/worker/cluster", "admin")[1]) == 2)
        yield secure
    finally:
        cluster.stop_all()


def _ids(secure: SecureCluster) -> tuple[str, str]:
    leader = secure.leader_id()
    assert leader is not None
    return leader, next(w for w in secure.https if w != leader)


def test_workers_announce_https_and_health_paths_need_a_token_when_configured(secure: SecureCluster) -> None:
    status, members = secure.call("w1", "GET", "/admin/v2/worker/cluster", "admin")
    assert status == 200 and all(m["url"].startswith("https://") for m in members)
    assert secure.call("w1", "GET", "/metrics")[0] == 401  # authenticateMetricsEndpoint: true
    assert secure.call("w1", "GET", "/metrics", "admin")[0] == 200


def test_roles_on_both_workers_and_forwarded_writes(secure: SecureCluster, client: pulsar.Client) -> None:
    leader, follower = _ids(secure)
    # A tenant created through one worker reaches the other (records on the cluster's topic).
    assert secure.call(follower, "PUT", "/admin/v2/tenants/ta", "admin", {"adminRoles": ["alice"]})[0] == 204
    assert wait_until(lambda: secure.call(leader, "GET", "/admin/v3/functions/ta/ns", "alice")[0] == 200)

    # alice creates through the follower: the write is forwarded to the leader as the worker.
    out = subprocess.run(
        [
            sys.executable, "-m", "engine", "functions", "create", "--py", str(EXAMPLE),
            "--classname", "exclaim_example.Exclaim", "--inputs", "persistent://ta/ns/in",
            "--output", "persistent://ta/ns/out", "--fqfn", "ta/ns/ex",
            "--admin-url", secure.https[follower], "--auth-params", f"token:{secure.setup.tokens['alice']}",
            "--tls-trust-cert-path", str(secure.setup.cert),
        ],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr

    for worker in (leader, follower):
        assert secure.call(worker, "GET", "/admin/v3/functions/ta/ns/ex")[0] == 401
        assert secure.call(worker, "GET", "/admin/v3/functions/ta/ns/ex", "expired")[0] == 401
        assert secure.call(worker, "GET", "/admin/v3/functions/ta/ns/ex", "bob")[0] == 403
        assert wait_until(
            lambda w=worker: secure.call(w, "GET", "/admin/v3/functions/ta/ns/ex", "alice")[0] == 200
        )
        assert secure.call(worker, "GET", "/admin/v3/functions/ta/ns/ex", "admin")[0] == 200
        # Status of the instance, wherever it runs, is fetched from its worker with the worker's token.
        assert wait_until(
            lambda w=worker: (
                secure.call(w, "GET", "/admin/v3/functions/ta/ns/ex/status", "alice")[1]["numRunning"] == 1
            ),
            timeout=30,
        )

    # An update through the follower is forwarded too; bob cannot delete it.
    assert secure.call(follower, "DELETE", "/admin/v3/functions/ta/ns/ex", "bob")[0] == 403
    assert secure.call(follower, "POST", "/admin/v3/functions/ta/ns/ex/stop", "alice")[0] == 200

    # The submitter's role is in the function's metadata.
    reader = client.create_reader(
        f"persistent://{secure.cluster.namespace}/metadata", pulsar.MessageId.earliest
    )
    try:
        specs = []
        while reader.has_message_available():
            msg = reader.read_next(5000)
            if msg.partition_key() == "ta/ns/ex" and msg.data():
                specs.append(pb.FunctionMetaData.FromString(msg.data()).functionAuthSpec)
    finally:
        reader.close()
    assert specs and all(s.data == b"alice" and s.provider == "magnetar.submitter-role" for s in specs)


def test_leader_route_refuses_other_roles(secure: SecureCluster) -> None:
    leader, _ = _ids(secure)
    status, body = secure.call(
        leader, "PUT", "/admin/v3/functions/leader/ta/ns/x", "alice", {"metadata": None}
    )
    assert status == 403 and "superuser" in body["reason"]
    assert (
        secure.call(leader, "PUT", "/admin/v3/functions/leader/ta/ns/x", None, {"metadata": None})[0] == 401
    )
