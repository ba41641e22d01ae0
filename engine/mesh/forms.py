"""Read a mesh document, in either form, into a :class:`~engine.mesh.model.MeshSpec`.

- **PIP-66**: top-level ``name``, ``tenant``, ``namespace``, an optional ``py`` (the
  package every member runs unless it names its own) and ``functionInfos``, each with
  ``name``, ``classname``, ``replicas``, ``inputs``, ``output`` and any other
  FunctionConfig field. Magnetar also reads ``sourceInfos`` / ``sinkInfos``
  (SourceConfig / SinkConfig fields) and ``externalInputs``.
- **FunctionMesh** (``apiVersion: compute.functionmesh.io/v1alpha1``, ``kind:
  FunctionMesh``): ``metadata.name`` and ``spec.functions`` / ``spec.sources`` /
  ``spec.sinks`` with Function Mesh's field names, mapped to Apache's config names
  (see ``_FUNCTION_FIELDS``). The Pulsar tenant and namespace are the members'
  ``tenant`` / ``namespace`` (one pair for the whole mesh; default public/default).
  Fields only a Kubernetes deployment uses are kept in ``MemberSpec.kubernetes``.

Every problem is a :class:`~engine.mesh.model.MeshError` naming the member and its field.
"""

from __future__ import annotations

from typing import Any

from engine.config.errors import ConfigProblem
from engine.mesh.model import MemberKind, MemberSpec, MeshError, MeshSpec
from engine.security.names import NAME_RULE, is_valid_name

__all__ = ["API_VERSION", "KIND", "parse_mesh"]

API_VERSION = "compute.functionmesh.io/v1alpha1"
KIND = "FunctionMesh"

#: PIP-66's lower-case spellings of FunctionConfig fields.
_PIP66_ALIASES = {"classname": "className", "replicas": "parallelism", "jarFile": "jar"}

#: Function Mesh field -> FunctionConfig field, for what maps one to one.
_FUNCTION_FIELDS = {
    "className": "className",
    "replicas": "parallelism",
    "processingGuarantee": "processingGuarantees",
    "subscriptionName": "subName",
    "subscriptionPosition": "subscriptionPosition",
    "deadLetterTopic": "deadLetterTopic",
    "maxMessageRetry": "maxMessageRetries",
    "timeout": "timeoutMs",
    "funcConfig": "userConfig",
    "secretsMap": "secrets",
    "logTopic": "logTopic",
    "windowConfig": "windowConfig",
    "autoAck": "autoAck",
    "retainOrdering": "retainOrdering",
    "retainKeyOrdering": "retainKeyOrdering",
    "cleanupSubscription": "cleanupSubscription",
    "forwardSourceMessageProperty": "forwardSourceMessageProperty",
    "maxPendingAsyncRequests": "maxPendingAsyncRequests",
    "runtimeFlags": "runtimeFlags",
    "logLevel": "logLevel",
    "concurrency": "concurrency",
}
#: Function Mesh fields that only a Kubernetes deployment uses (kept for the manifests).
_KUBERNETES_FIELDS = frozenset(
    {
        "pod",
        "image",
        "imagePullPolicy",
        "downloaderImage",
        "cleanupImage",
        "volumeMounts",
        "volumeClaimTemplates",
        "pulsar",
        "clusterName",
        "minReplicas",
        "showPreciseParallelism",
        "statefulConfig",
        "java",
        "golang",
        "resources",
    }
)
_GUARANTEES = {
    "atleast_once": "ATLEAST_ONCE",
    "atmost_once": "ATMOST_ONCE",
    "effectively_once": "EFFECTIVELY_ONCE",
}
_POSITIONS = {"latest": "Latest", "earliest": "Earliest"}


def parse_mesh(doc: Any, tenant: str | None = None, namespace: str | None = None) -> MeshSpec:
    """The mesh of ``doc`` (either form); ``tenant``/``namespace`` fill what the document leaves out.

    Raises
    ------
    MeshError
        Naming every problem (a member and its field) when the document is not a mesh.
    """
    if not isinstance(doc, dict):
        raise MeshError.of(
            "mesh", doc, "a mapping: PIP-66 YAML with functionInfos, or a FunctionMesh resource"
        )
    if doc.get("kind") == KIND or "apiVersion" in doc:
        return _function_mesh(doc, tenant, namespace)
    return _pip66(doc, tenant, namespace)


def _identity(problems: list[ConfigProblem], field: str, value: Any) -> str:
    if not isinstance(value, str) or not is_valid_name(value):
        problems.append(ConfigProblem(field, value, NAME_RULE))
        return str(value)
    return value


def _pick(field: str, given: Any, default: str | None, problems: list[ConfigProblem]) -> str:
    if given is not None and default is not None and given != default:
        problems.append(ConfigProblem(field, given, f"{default!r}, as the request names it"))
    return _identity(
        problems,
        field,
        given if given is not None else (default or ("public" if field == "tenant" else "default")),
    )


def _member_list(doc: dict[str, Any], key: str, problems: list[ConfigProblem]) -> list[dict[str, Any]]:
    items = doc.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        problems.append(ConfigProblem(key, items, "a list of member mappings"))
        return []
    return items


def _external(doc: dict[str, Any], problems: list[ConfigProblem]) -> tuple[str, ...]:
    ext = doc.get("externalInputs") or []
    if not isinstance(ext, list) or not all(isinstance(t, str) for t in ext):
        problems.append(
            ConfigProblem("externalInputs", ext, "a list of topic names produced outside the mesh")
        )
        return ()
    return tuple(ext)


def _finish(
    tenant: str,
    namespace: str,
    name: str,
    form: str,
    members: list[MemberSpec],
    doc: dict[str, Any],
    problems: list[ConfigProblem],
    external: tuple[str, ...],
    fuse: Any,
) -> MeshSpec:
    if not members:
        problems.append(ConfigProblem("members", [], "at least one function, source or sink"))
    seen: set[str] = set()
    for m in members:
        if m.name in seen:
            problems.append(ConfigProblem(f"{m.kind.value} {m.name}", m.name, "a name no other member has"))
        seen.add(m.name)
    fused: tuple[str, ...] = ()
    if fuse not in (None, False):
        if fuse is True:
            fused = tuple(m.name for m in members if m.kind is MemberKind.FUNCTION)
        elif isinstance(fuse, list) and all(isinstance(n, str) and n in seen for n in fuse):
            fused = tuple(fuse)
        else:
            problems.append(ConfigProblem("fuse", fuse, "true, or a list of member names"))
    if problems:
        raise MeshError(problems)
    return MeshSpec(tenant, namespace, name, form, tuple(members), external, doc, fused, fuse is True)


# -- PIP-66 -------------------------------------------------------------------------------------


def _pip66(doc: dict[str, Any], tenant: str | None, namespace: str | None) -> MeshSpec:
    problems: list[ConfigProblem] = []
    if "functionInfos" not in doc:
        problems.append(
            ConfigProblem("functionInfos", None, "the mesh's functions (PIP-66), or a FunctionMesh")
        )
    name = _identity(problems, "name", doc.get("name"))
    t = _pick("tenant", doc.get("tenant"), tenant, problems)
    ns = _pick("namespace", doc.get("namespace"), namespace, problems)
    package = doc.get("py")
    if "jarFile" in doc:
        problems.append(
            ConfigProblem("jarFile", doc["jarFile"], "Magnetar runs Python: name the package with py")
        )
    members: list[MemberSpec] = []
    for i, info in enumerate(_member_list(doc, "functionInfos", problems)):
        config = {_PIP66_ALIASES.get(k, k): v for k, v in info.items() if k != "fuse"}
        member_name = config.get("name") or (str(config.get("className", "")).rsplit(".", 1)[-1] or None)
        if not member_name:
            problems.append(ConfigProblem(f"functionInfos[{i}].name", None, "required"))
            continue
        config.update(tenant=t, namespace=ns, name=member_name)
        own = config.get("py") or package
        if own:
            config["py"] = own
        members.append(MemberSpec(MemberKind.FUNCTION, str(member_name), config, own))
    for key, kind in (("sourceInfos", MemberKind.SOURCE), ("sinkInfos", MemberKind.SINK)):
        for i, info in enumerate(_member_list(doc, key, problems)):
            config = dict(info)
            member_name = config.get("name")
            if not member_name:
                problems.append(ConfigProblem(f"{key}[{i}].name", None, "required"))
                continue
            config.update(tenant=t, namespace=ns)
            own = config.pop("py", None) or config.get("archive")
            if own:
                config["archive"] = own
            members.append(MemberSpec(kind, str(member_name), config, own))
    return _finish(t, ns, name, "pip-66", members, doc, problems, _external(doc, problems), doc.get("fuse"))


# -- FunctionMesh resource -------------------------------------------------------------------


def _function_mesh(doc: dict[str, Any], tenant: str | None, namespace: str | None) -> MeshSpec:
    problems: list[ConfigProblem] = []
    if doc.get("apiVersion") != API_VERSION:
        problems.append(ConfigProblem("apiVersion", doc.get("apiVersion"), API_VERSION))
    if doc.get("kind") != KIND:
        problems.append(ConfigProblem("kind", doc.get("kind"), KIND))
    meta = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    name = _identity(problems, "metadata.name", meta.get("name"))
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        problems.append(ConfigProblem("spec", spec, "a mapping with functions, sources and/or sinks"))
        spec = {}
    raw: list[tuple[MemberKind, str, dict[str, Any]]] = []
    for key, kind in (
        ("sources", MemberKind.SOURCE),
        ("functions", MemberKind.FUNCTION),
        ("sinks", MemberKind.SINK),
    ):
        for i, item in enumerate(_member_list(spec, key, problems)):
            raw.append((kind, f"spec.{key}[{i}]", item))
    tenants = {str(item["tenant"]) for _, _, item in raw if item.get("tenant")}
    namespaces = {str(item["namespace"]) for _, _, item in raw if item.get("namespace")}
    for field, values in (("tenant", tenants), ("namespace", namespaces)):
        if len(values) > 1:
            problems.append(
                ConfigProblem(field, sorted(values), "one Pulsar tenant/namespace for every member")
            )
    t = _pick("tenant", next(iter(tenants), None), tenant, problems)
    ns = _pick("namespace", next(iter(namespaces), None), namespace, problems)
    members = []
    for kind, where, item in raw:
        member = _fm_member(kind, where, item, t, ns, problems)
        if member is not None:
            members.append(member)
    return _finish(
        t, ns, name, "FunctionMesh", members, doc, problems, _external(spec, problems), spec.get("fuse")
    )


def _fm_member(
    kind: MemberKind,
    where: str,
    item: dict[str, Any],
    tenant: str,
    namespace: str,
    problems: list[ConfigProblem],
) -> MemberSpec | None:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        problems.append(ConfigProblem(f"{where}.name", name, "required"))
        return None
    config: dict[str, Any] = {"tenant": tenant, "namespace": namespace, "name": name}
    kube = {k: v for k, v in item.items() if k in _KUBERNETES_FIELDS}
    python = item.get("python") or {}
    if not isinstance(python, dict):
        problems.append(ConfigProblem(f"{where}.python", python, "a mapping with py or pyLocation"))
        python = {}
    package = python.get("py") or python.get("pyLocation")
    guarantee = item.get("processingGuarantee")
    if isinstance(guarantee, str):
        guarantee = _GUARANTEES.get(guarantee.lower(), guarantee)
    inp = item.get("input") or {}
    out = item.get("output") or {}
    for part, value in (("input", inp), ("output", out)):
        if not isinstance(value, dict):
            problems.append(ConfigProblem(f"{where}.{part}", value, "a mapping"))
    inp = inp if isinstance(inp, dict) else {}
    out = out if isinstance(out, dict) else {}
    if kind is MemberKind.FUNCTION:
        for fm_name, apache in _FUNCTION_FIELDS.items():
            if fm_name in item:
                config[apache] = item[fm_name]
        if guarantee is not None:
            config["processingGuarantees"] = guarantee
        position = config.get("subscriptionPosition")
        if isinstance(position, str):
            config["subscriptionPosition"] = _POSITIONS.get(position.lower(), position)
        _fm_inputs(config, inp, function=True)
        if out.get("topic"):
            config["output"] = out["topic"]
        if out.get("sinkSerdeClassName"):
            config["outputSerdeClassName"] = out["sinkSerdeClassName"]
        if out.get("sinkSchemaType"):
            config["outputSchemaType"] = out["sinkSchemaType"]
        if out.get("customSchemaSinks"):
            config["customSchemaOutputs"] = out["customSchemaSinks"]
        if package:
            config["py"] = package
    elif kind is MemberKind.SOURCE:
        config["topicName"] = out.get("topic")
        if out.get("sinkSchemaType"):
            config["schemaType"] = out["sinkSchemaType"]
        if out.get("sinkSerdeClassName"):
            config["serdeClassName"] = out["sinkSerdeClassName"]
        _connector_fields(config, item, "sourceConfig", "sourceType", guarantee, package)
    else:
        _fm_inputs(config, inp, function=False)
        for fm_name, apache in (
            ("subscriptionName", "sourceSubscriptionName"),
            ("subscriptionPosition", "sourceSubscriptionPosition"),
            ("retainOrdering", "retainOrdering"),
            ("autoAck", "autoAck"),
            ("timeout", "timeoutMs"),
            ("maxMessageRetry", "maxMessageRetries"),
            ("deadLetterTopic", "deadLetterTopic"),
        ):
            if fm_name in item:
                config[apache] = item[fm_name]
        position = config.get("sourceSubscriptionPosition")
        if isinstance(position, str):
            config["sourceSubscriptionPosition"] = _POSITIONS.get(position.lower(), position)
        _connector_fields(config, item, "sinkConfig", "sinkType", guarantee, package)
    if kind is not MemberKind.FUNCTION:
        for fm_name, apache in (
            ("replicas", "parallelism"),
            ("secretsMap", "secrets"),
            ("logTopic", "logTopic"),
        ):
            if fm_name in item:
                config[apache] = item[fm_name]
    max_replicas = item.get("maxReplicas")
    if max_replicas is not None and (not isinstance(max_replicas, int) or isinstance(max_replicas, bool)):
        problems.append(ConfigProblem(f"{where}.maxReplicas", max_replicas, "a whole number"))
        max_replicas = None
    return MemberSpec(kind, name, config, package, kube, max_replicas)


def _fm_inputs(config: dict[str, Any], inp: dict[str, Any], function: bool) -> None:
    if inp.get("topics"):
        config["inputs"] = inp["topics"]
    if inp.get("topicPattern"):
        config["topicsPattern"] = inp["topicPattern"]
    if inp.get("customSerdeSources"):
        config["customSerdeInputs" if function else "topicToSerdeClassName"] = inp["customSerdeSources"]
    if inp.get("customSchemaSources"):
        config["customSchemaInputs" if function else "topicToSchemaType"] = inp["customSchemaSources"]
    if function and inp.get("sourceSpecs"):
        config["inputSpecs"] = inp["sourceSpecs"]


def _connector_fields(
    config: dict[str, Any],
    item: dict[str, Any],
    configs_key: str,
    type_key: str,
    guarantee: Any,
    package: Any,
) -> None:
    if item.get(configs_key) is not None:
        config["configs"] = item[configs_key]
    if item.get(type_key):
        config[type_key] = item[type_key]
    if item.get("className"):
        config["className"] = item["className"]
    if guarantee is not None:
        config["processingGuarantees"] = guarantee
    if package:
        config["archive"] = package
