"""Kubernetes manifests of a mesh, written offline: what a deployment on Kubernetes needs.

Two ways to deploy, both in the output:

- the ``FunctionMesh`` resource for clusters running the Function Mesh operator (a
  ``FunctionMesh`` document is kept as written; PIP-66 YAML is converted to it);
- for clusters without the operator, per member a ``ConfigMap`` (the instance's launch
  file and, when the package is a local file, the package itself), a headless
  ``Service`` and a ``StatefulSet``, all named ``pf-<tenant>-<namespace>-<name>`` as
  Apache's Kubernetes runtime names them. The container runs Magnetar's child process
  (``python -m engine.runtime.child``) with InstanceControl on gRPC port 9093 and
  Prometheus metrics on 9094; each pod's ordinal is its instance id. Resources are the
  member's Kubernetes ``resources`` if given, else its config's cpu/ram/disk (Apache's
  defaults: 1 CPU, 1 GiB RAM, 10 GiB disk).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import Any

import orjson
import yaml

from engine.mesh.forms import API_VERSION, KIND
from engine.mesh.members import ResolvedMember
from engine.mesh.model import MeshError
from engine.mesh.plan import MeshPlan, plan_mesh

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_IMAGE",
    "GRPC_PORT",
    "METRICS_PORT",
    "build_manifests",
    "kubernetes_name",
    "manifests_yaml",
]

GRPC_PORT = 9093
METRICS_PORT = 9094
DEFAULT_IMAGE = "magnetar:latest"
DEFAULT_BROKER_URL = "pulsar://pulsar-broker:6650"
_LAUNCH_DIR = "/magnetar/launch"
_DATA_DIR = "/magnetar/data"
#: A StatefulSet's pods add ``-N`` and a revision label to its name, which must stay within 63.
_MAX_NAME = 52
_DEFAULT_CPU, _DEFAULT_RAM, _DEFAULT_DISK = 1.0, 1 << 30, 10 << 30


def kubernetes_name(tenant: str, namespace: str, name: str) -> str:
    """``pf-<tenant>-<namespace>-<name>`` made a DNS-1123 label (a hash keeps long names apart)."""
    raw = f"pf-{tenant}-{namespace}-{name}"
    safe = re.sub(r"[^a-z0-9-]", "-", raw.lower()).strip("-")
    if safe == raw and len(safe) <= _MAX_NAME:
        return safe
    digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
    return f"{safe[: _MAX_NAME - 9].rstrip('-')}-{digest}"


def _label(value: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63]
    return text.strip("-_.") or "x"


def _quantities(member: ResolvedMember) -> dict[str, Any]:
    given = member.member.kubernetes.get("resources")
    if isinstance(given, dict) and given:
        return given
    r = member.details.resources
    cpu = r.cpu or _DEFAULT_CPU
    ram = r.ram or _DEFAULT_RAM
    disk = r.disk or _DEFAULT_DISK
    amounts = {"cpu": f"{int(cpu * 1000)}m", "memory": str(ram), "ephemeral-storage": str(disk)}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _package(member: ResolvedMember, base_dir: str) -> tuple[str, bytes] | None:
    package = member.member.package
    if not package:
        return None
    if "://" in package:
        raise MeshError.of(
            f"{member.kind.value} {member.name}: py",
            package,
            "a local file for the manifests (the ConfigMap carries it)",
        )
    path = package if os.path.isabs(package) else os.path.join(base_dir, package)
    try:
        with open(path, "rb") as fh:
            return os.path.basename(package), fh.read()
    except OSError as exc:
        raise MeshError.of(
            f"{member.kind.value} {member.name}: py", package, f"a readable file ({exc.strerror})"
        ) from None


def _launch(member: ResolvedMember, package_file: str | None, broker_url: str, state_url: str | None) -> str:
    """The launch file of :class:`engine.runtime.child.Launch` (the instance id is set per pod)."""
    return orjson.dumps(
        {
            "fqfn": member.member.fqfn,
            "instance_id": 0,
            "details": base64.b64encode(member.details.SerializeToString()).decode(),
            "package_path": f"{_LAUNCH_DIR}/{package_file}" if package_file else None,
            "broker": {"url": broker_url, "kind": "apache"},
            "state_storage_url": state_url,
            "hotpath": None,
            "options": {},
            "secrets_provider": None,
            "worker_id": "kubernetes",
            "data_dir": _DATA_DIR,
            "log_level": "INFO",
        },
        option=orjson.OPT_INDENT_2,
    ).decode()


def _member_manifests(
    plan: MeshPlan, member: ResolvedMember, image: str, broker_url: str, state_url: str | None, base_dir: str
) -> list[dict[str, Any]]:
    spec = plan.spec
    name = kubernetes_name(spec.tenant, spec.namespace, member.name)
    kube = member.member.kubernetes
    pod: dict[str, Any] = kube["pod"] if isinstance(kube.get("pod"), dict) else {}
    selector = {
        "app.kubernetes.io/name": "magnetar",
        "app.kubernetes.io/component": member.kind.value,
        "magnetar.io/member": name,
    }
    labels = {**selector, "magnetar.io/mesh": _label(f"{spec.tenant}.{spec.namespace}.{spec.name}")}
    package = _package(member, base_dir)
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-launch", "labels": labels},
        "data": {"launch.json": _launch(member, package[0] if package else None, broker_url, state_url)},
    }
    if package:
        config_map["binaryData"] = {package[0]: base64.b64encode(package[1]).decode()}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "clusterIP": "None",
            "selector": selector,
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT, "protocol": "TCP"},
            ],
        },
    }
    container: dict[str, Any] = {
        "name": "instance",
        "image": kube.get("image") or image,
        "command": [
            "python",
            "-m",
            "engine.runtime.child",
            f"{_LAUNCH_DIR}/launch.json",
            "--fqfn",
            member.member.fqfn,
            "--instance-id-from-hostname",
            "--control-host",
            "0.0.0.0",
            "--control-port",
            str(GRPC_PORT),
            "--metrics-port",
            str(METRICS_PORT),
        ],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": _quantities(member),
        "volumeMounts": [
            {"name": "launch", "mountPath": _LAUNCH_DIR, "readOnly": True},
            {"name": "data", "mountPath": _DATA_DIR},
            *(kube.get("volumeMounts") or []),
        ],
    }
    if kube.get("imagePullPolicy"):
        container["imagePullPolicy"] = kube["imagePullPolicy"]
    if pod.get("env"):
        container["env"] = pod["env"]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": pod.get("securityContext") or {"runAsNonRoot": True, "runAsUser": 10000},
        "volumes": [
            {"name": "launch", "configMap": {"name": f"{name}-launch", "defaultMode": 0o440}},
            {"name": "data", "emptyDir": {}},
            *(pod.get("volumes") or []),
        ],
    }
    for key, target in (
        ("nodeSelector", "nodeSelector"),
        ("affinity", "affinity"),
        ("tolerations", "tolerations"),
        ("imagePullSecrets", "imagePullSecrets"),
        ("serviceAccountName", "serviceAccountName"),
        ("initContainers", "initContainers"),
        ("terminationGracePeriodSeconds", "terminationGracePeriodSeconds"),
    ):
        if pod.get(key) is not None:
            pod_spec[target] = pod[key]
    if pod.get("sidecars"):
        pod_spec["containers"].extend(pod["sidecars"])
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": max(1, member.details.parallelism),
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**(pod.get("labels") or {}), **labels},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        **(pod.get("annotations") or {}),
                    },
                },
                "spec": pod_spec,
            },
        },
    }
    return [config_map, service, stateful_set]


def _as_function_mesh(plan: MeshPlan) -> dict[str, Any]:
    """The ``FunctionMesh`` resource: the document itself, or PIP-66 converted to Function Mesh's names."""
    spec = plan.spec
    if spec.form == KIND:
        return spec.document
    functions = []
    for member in plan.members:
        f = member.function
        assert f is not None  # PIP-66 members here are functions
        item: dict[str, Any] = {
            "name": member.name,
            "className": f.class_name,
            "tenant": f.tenant,
            "namespace": f.namespace,
            "replicas": f.parallelism,
            "input": {"topics": [i.topic for i in f.inputs if not i.is_regex_pattern]},
            "processingGuarantee": f.processing_guarantees.lower(),
            "subscriptionName": f.subscription_name,
            "subscriptionPosition": f.subscription_position.lower(),
            "python": {"py": os.path.basename(f.py or "")},
            "resources": _quantities(member),
        }
        patterns = [i.topic for i in f.inputs if i.is_regex_pattern]
        if patterns:
            item["input"]["topicPattern"] = patterns[0]
        if f.output:
            item["output"] = {"topic": f.output}
        for key, value in (
            ("funcConfig", f.user_config),
            ("logTopic", f.log_topic),
            ("deadLetterTopic", f.dead_letter_topic),
            ("maxMessageRetry", f.max_message_retries),
            ("timeout", f.timeout_ms),
        ):
            if value:
                item[key] = value
        functions.append(item)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": kubernetes_name(spec.tenant, spec.namespace, spec.name).removeprefix("pf-")},
        "spec": {"functions": functions},
    }


def build_manifests(
    doc: Any,
    tenant: str | None = None,
    namespace: str | None = None,
    *,
    image: str | None = None,
    broker_url: str | None = None,
    state_storage_url: str | None = None,
    base_dir: str = ".",
) -> list[dict[str, Any]]:
    """Every manifest of the mesh in ``doc``: the FunctionMesh resource, then each member's three.

    Raises
    ------
    ConfigError
        (a :class:`~engine.mesh.model.MeshError`) when the mesh does not validate, or a
        member's package cannot be read.
    """
    plan = plan_mesh(doc, tenant, namespace)
    out = [_as_function_mesh(plan)]
    for member in plan.stored:
        out.extend(
            _member_manifests(
                plan,
                member,
                image or DEFAULT_IMAGE,
                broker_url or DEFAULT_BROKER_URL,
                state_storage_url,
                base_dir,
            )
        )
    return out


def manifests_yaml(doc: Any, tenant: str | None = None, namespace: str | None = None, **kw: Any) -> str:
    """:func:`build_manifests` as one multi-document YAML text."""
    return yaml.safe_dump_all(build_manifests(doc, tenant, namespace, **kw), sort_keys=False)
