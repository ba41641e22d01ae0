"""Kubernetes manifests of a mesh, validated offline against Kubernetes' OpenAPI schemas.

The core resources (ConfigMap, Service, StatefulSet) are checked whole with
kubernetes-validate in strict mode. It has no schema for the FunctionMesh CRD, so the
resource's own shape is checked here and its Kubernetes-typed parts (metadata, each
member's resources) are validated inside core resources. The container command is run
for real: the launch file of the ConfigMap starts a Magnetar instance on the broker.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import orjson
import pytest
import yaml

import engine.examples.exclamation as exclamation
from engine.broker import EmbeddedBroker
from engine.mesh.manifests import GRPC_PORT, METRICS_PORT, build_manifests, kubernetes_name
from engine.mesh.model import MeshError
from tests.cluster.conftest import magnetar
from tests.integration.harness import consume, produce
from tests.mesh.documents import function_mesh, pip66

VERSION = kubernetes_validate.latest_version()


def _validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, VERSION, strict=True)


@pytest.fixture
def package_dir(tmp_path: Path) -> Path:
    shutil.copy(exclamation.__file__, tmp_path / "exclamation.py")
    return tmp_path


def _by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


@pytest.mark.parametrize("form", ["pip-66", "FunctionMesh"])
def test_every_manifest_validates_against_the_kubernetes_schemas(form: str, package_dir: Path) -> None:
    doc = pip66("ns1") if form == "pip-66" else function_mesh("ns1", "/data/out")
    manifests = build_manifests(doc, base_dir=str(package_dir), image="example/magnetar:1")
    members = 2 if form == "pip-66" else 3
    assert [m["kind"] for m in manifests].count("StatefulSet") == members
    assert len(_by_kind(manifests, "Service")) == len(_by_kind(manifests, "ConfigMap")) == members
    for manifest in manifests:
        if manifest["kind"] != "FunctionMesh":
            _validate(manifest)

    fm = manifests[0]
    assert fm["apiVersion"] == "compute.functionmesh.io/v1alpha1" and fm["kind"] == "FunctionMesh"
    assert set(fm["spec"]) <= {"functions", "sources", "sinks"} and fm["spec"]
    _validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": fm["metadata"]})
    for key in ("functions", "sources", "sinks"):
        for item in fm["spec"].get(key, []):
            assert item["name"] and item["tenant"] == "public" and item["namespace"] == "ns1"
            if "resources" in item:
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "check"},
                    "spec": {"containers": [{"name": "c", "image": "i", "resources": item["resources"]}]},
                }
                _validate(pod)


def test_statefulset_and_service_are_apaches_names_with_the_child_process(package_dir: Path) -> None:
    manifests = build_manifests(pip66("ns1"), base_dir=str(package_dir))
    sets = {m["metadata"]["name"]: m for m in _by_kind(manifests, "StatefulSet")}
    assert sorted(sets) == ["pf-public-ns1-first", "pf-public-ns1-second"]
    first = sets["pf-public-ns1-first"]
    assert first["spec"]["serviceName"] == "pf-public-ns1-first" and first["spec"]["replicas"] == 1
    container = first["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:4] == [
        "python",
        "-m",
        "engine.runtime.child",
        "/magnetar/launch/launch.json",
    ]
    assert "--instance-id-from-hostname" in container["command"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": GRPC_PORT,
        "metrics": METRICS_PORT,
    }
    assert container["resources"]["requests"] == {
        "cpu": "1000m",
        "memory": str(1 << 30),
        "ephemeral-storage": str(10 << 30),
    }
    service = next(
        m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "pf-public-ns1-first"
    )
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == first["spec"]["selector"]["matchLabels"]


def test_function_mesh_kubernetes_fields_are_kept(package_dir: Path) -> None:
    manifests = build_manifests(function_mesh("ns1", "/data/out"), base_dir=str(package_dir))
    shout = next(
        m for m in _by_kind(manifests, "StatefulSet") if m["metadata"]["name"] == "pf-public-ns1-shout"
    )
    template = shout["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "data"  # pod.labels
    assert template["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    gen = next(m for m in _by_kind(manifests, "StatefulSet") if m["metadata"]["name"] == "pf-public-ns1-gen")
    assert (
        gen["spec"]["template"]["spec"]["containers"][0]["image"]
        == "streamnative/pulsar-io-data-generator:3.0"
    )


def test_long_and_unsafe_names_become_distinct_dns_labels() -> None:
    a = kubernetes_name("public", "default", "A_Very_Long_Function_Name_" + "x" * 60)
    b = kubernetes_name("public", "default", "A_Very_Long_Function_Name_" + "x" * 61)
    assert a != b and len(a) <= 52 and len(b) <= 52
    for name in (a, b):
        _validate(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"ports": [{"port": 1}]},
            }
        )


def test_the_validation_can_fail(package_dir: Path) -> None:
    manifests = build_manifests(pip66("ns1"), base_dir=str(package_dir))
    broken = _by_kind(manifests, "StatefulSet")[0]
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken)


def test_a_member_package_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="function first: py"):
        build_manifests(pip66("ns1"), base_dir=str(tmp_path))


def test_cli_writes_manifests_privately(package_dir: Path) -> None:
    mesh_file = package_dir / "mesh.yaml"
    mesh_file.write_text(yaml.safe_dump(pip66("ns1")))
    out = package_dir / "k8s.yaml"
    res = magnetar("mesh", "manifests", "-f", str(mesh_file), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert os.stat(out).st_mode & 0o777 == 0o600
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs].count("StatefulSet") == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_container_command_runs_an_instance(
    package_dir: Path, broker: EmbeddedBroker, client: Any, tmp_path: Path
) -> None:
    ns = f"k8s{uuid.uuid4().hex[:6]}"
    manifests = build_manifests(pip66(ns), base_dir=str(package_dir), broker_url=broker.url)
    config_map = next(
        m for m in _by_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("first-launch")
    )
    statefulset = next(
        m for m in _by_kind(manifests, "StatefulSet") if m["metadata"]["name"].endswith("first")
    )
    # Lay the ConfigMap out as Kubernetes mounts it, and point the paths there.
    mount = tmp_path / "launch"
    mount.mkdir()
    for file, data in config_map.get("binaryData", {}).items():
        (mount / file).write_bytes(base64.b64decode(data))
    launch = orjson.loads(config_map["data"]["launch.json"])
    launch["package_path"] = str(mount / os.path.basename(launch["package_path"]))
    launch["data_dir"] = str(tmp_path / "data")
    launch["broker"]["kind"] = "pulsar-lite"  # the test's broker; a cluster's is Apache Pulsar
    (mount / "launch.json").write_text(orjson.dumps(launch).decode())
    command = statefulset["spec"]["template"]["spec"]["containers"][0]["command"]
    args = [a for a in command[4:] if a != "--instance-id-from-hostname"]
    port, metrics = _free_port(), _free_port()
    args = [str(port) if a == str(GRPC_PORT) else str(metrics) if a == str(METRICS_PORT) else a for a in args]
    args = ["127.0.0.1" if a == "0.0.0.0" else a for a in args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.runtime.child", str(mount / "launch.json"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = orjson.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["port"] == port, proc.stderr.read() if proc.stderr else ""
        produce(client, f"persistent://public/{ns}/chain-in", [b"k8s"])
        got = consume(client, f"persistent://public/{ns}/chain-mid", 1, timeout=30)
        assert [m.data() for m in got] == [b"k8s!"]
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as resp:
            assert b"pulsar_function_received_total" in resp.read()
    finally:
        proc.terminate()
        proc.wait(20)
