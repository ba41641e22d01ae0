"""``/admin/v3/sources`` and ``/admin/v3/sinks``: create, delete, get, list, status, stats and control.

Sources and sinks are stored as every function is (``FunctionMetaData``), with
``componentType`` SOURCE or SINK (:mod:`engine.io.details`), so they are scheduled,
assigned, restarted and rebalanced by the same machinery. A create is multipart as
pulsar-admin sends it: ``sourceConfig`` / ``sinkConfig`` (JSON) and, for a connector of
your own, ``data`` (its .py, .zip or .whl) or ``url``; a sink's transform function package
may come along as the part ``transformFunction`` (:mod:`engine.io.transform`). Also the built-in connectors'
listings (``/builtinsources``, ``/builtinsinks``, ``/admin/v2/worker/connectors`` and
``/admin/v3/functions/connectors``).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from engine.api import functions_routes
from engine.api.bodies import read_parts
from engine.api.errors import http_error
from engine.api.functions_routes import (
    _fqfn,
    _instance_keys,
    _instance_status,
    _submit,
    _with_identity,
    _worker,
)
from engine.cluster.scheduler import split_instance_key
from engine.config import ConfigError
from engine.function.errors import FunctionLoadError
from engine.io.connector_config import connector_of, sink_spec, source_spec
from engine.io.connector_status import connector_status
from engine.io.connector_update import merged_sink_config, merged_source_config
from engine.io.connectors import BUILTIN_SINKS, BUILTIN_SOURCES
from engine.io.details import (
    sink_details,
    sink_from_details,
    source_details,
    source_from_details,
    transform_from_details,
)
from engine.io.loader import connector_class
from engine.io.transform import TransformSpec, transform_of
from engine.packages.locations import store_package
from engine.proto import Function_pb2 as pb
from engine.security.names import NAME_RULE, is_valid_name
from engine.worker.worker import Worker

__all__ = ["add_connector_routes"]

_COMPONENT = {"source": pb.FunctionDetails.SOURCE, "sink": pb.FunctionDetails.SINK}


def _kind(request: web.Request) -> str:
    return str(request.match_info.get("kind", "sources")).removesuffix("s")


def _existing(worker: Worker, fqfn: str, kind: str) -> pb.FunctionMetaData:
    md = worker.metadata.registry.get(fqfn)
    if md is None or md.functionDetails.componentType != _COMPONENT[kind]:
        raise http_error(404, f"{kind.capitalize()} {fqfn} doesn't exist")
    return md


@dataclass
class _Submission:
    """A create or update as pulsar-admin sends it, with a sink's transform function package if uploaded."""

    config: dict[str, Any]
    data: bytes | None = None
    filename: str | None = None
    url: str | None = None
    #: ``(content, file name)`` of the ``transformFunction`` part.
    transform: tuple[bytes, str] | None = None


async def _submission(request: web.Request, kind: str) -> _Submission:
    sub = _Submission({})
    if not request.content_type.startswith("multipart/"):
        raise http_error(400, f"expected multipart/form-data with {kind}Config")
    for name, part_filename, content in await read_parts(request):
        if name == f"{kind}Config":
            try:
                sub.config = orjson.loads(content) if content.strip() else {}
            except orjson.JSONDecodeError as exc:
                raise http_error(400, f"{kind}Config: not valid JSON ({exc})")
        elif name == "data":
            sub.data, sub.filename = content, part_filename or "package.py"
        elif name == "url":
            sub.url = content.decode().strip() or None
        elif name == "transformFunction" and kind == "sink":
            if not part_filename:
                raise http_error(400, "transformFunction: the part must be a file (.py, .zip or .whl)")
            sub.transform = (content, os.path.basename(part_filename))
    if not isinstance(sub.config, dict):
        raise http_error(400, f"{kind}Config: expected a JSON object")
    if sub.transform is not None:
        # The uploaded file is the package: the config names it by its file name.
        sub.config["transformFunction"] = sub.transform[1]
    return sub


async def create(request: web.Request) -> web.Response:
    worker, fqfn, kind = _worker(request), _fqfn(request), _kind(request)
    sub = await _submission(request, kind)
    config = _with_identity(sub.config, fqfn)
    type_name, _archive, _class_name = connector_of(config, kind)
    details = _validated(worker, config, kind)
    if worker.metadata.registry.get(fqfn) is not None:
        raise http_error(400, f"{kind.capitalize()} {fqfn} already exists")
    location = await store_package(worker, sub.data, sub.filename, sub.url)
    if location is None and not type_name:
        raise http_error(400, f"data: your {kind}'s package (.py, .zip or .whl), or a built-in {kind}Type")
    md = pb.FunctionMetaData(functionDetails=details, createTime=int(time.time() * 1000))
    if location is not None:
        md.packageLocation.CopyFrom(location)
    if kind == "sink":
        transform = await _transform_location(worker, _transform(config), sub.transform)
        if transform is not None:
            md.transformFunctionPackageLocation.CopyFrom(transform)
    version = await _submit(worker, fqfn, md, worker.metadata.registry.current_version(fqfn))
    return web.json_response({"version": version})


def _transform(config: dict[str, Any]) -> TransformSpec | None:
    """The sink's transform function, or ``None`` (a 400 naming the key if it is invalid)."""
    try:
        return transform_of(config)
    except ConfigError as exc:
        raise http_error(400, str(exc))


async def _transform_location(
    worker: Worker, transform: TransformSpec | None, upload: tuple[bytes, str] | None
) -> pb.PackageLocationMetaData | None:
    """The transform function's package stored in the cluster's package store, so any worker can run it.

    The uploaded file, else ``transformFunction``: a registry package URL, an http(s) URL
    fetched now, or a file (a path or ``file://``) of this worker, read now.
    """
    if transform is None or (upload is None and not transform.package):
        return None  # no package: the class comes from the sink's own package or the installed modules
    data, filename, url = None, None, None
    if upload is not None:
        data, filename = upload
    else:
        assert transform.package is not None
        url = transform.package if "://" in transform.package else f"file://{transform.package}"
    try:
        return await store_package(worker, data, filename, url)
    except web.HTTPClientError as exc:  # store_package names its own parts: name the config key instead
        reason = orjson.loads(exc.text or "{}").get("reason", "")
        raise http_error(exc.status, f"transformFunction: {reason.split(': ', 1)[-1]}")


def _validated(worker: Worker, config: dict[str, Any], kind: str) -> pb.FunctionDetails:
    """The details of a SourceConfig / SinkConfig mapping; a 400 naming the field if it is invalid."""
    type_name, _archive, class_name = connector_of(config, kind)
    try:
        if type_name:
            connector_class(
                kind, type_name, None, None, worker.data_dir if hasattr(worker, "data_dir") else "."
            )
        if kind == "source":
            return source_details(source_spec(config))
        sspec, configs = sink_spec(config)
        return sink_details(sspec, configs, type_name, class_name, _transform(config))
    except (ConfigError, FunctionLoadError) as exc:
        raise http_error(400, str(exc))


async def _updated_transform(
    worker: Worker, merged: dict[str, Any], sub: _Submission, old_md: pb.FunctionMetaData
) -> pb.PackageLocationMetaData | None:
    """An updated sink's transform package: stored anew when the update names one, else the stored one."""
    transform = _transform(merged)
    if sub.transform is not None or sub.config.get("transformFunction"):
        return await _transform_location(worker, transform, sub.transform)
    if transform is not None and transform.package and old_md.HasField("transformFunctionPackageLocation"):
        return old_md.transformFunctionPackageLocation
    return None


async def update(request: web.Request) -> web.Response:
    """Replace a source's or sink's config (and package); its instances restart where they stopped."""
    worker, fqfn, kind = _worker(request), _fqfn(request), _kind(request)
    old_md = _existing(worker, fqfn, kind)
    expected = int(old_md.version)
    sub = await _submission(request, kind)
    data, filename, url = sub.data, sub.filename, sub.url
    given = _with_identity(sub.config, fqfn)
    try:
        merged = (merged_source_config if kind == "source" else merged_sink_config)(old_md, given)
    except ConfigError as exc:
        raise http_error(400, str(exc))
    type_name, _archive, _class_name = connector_of(merged, kind)
    details = _validated(worker, merged, kind)
    location = await store_package(worker, data, filename, url)
    if location is None and not type_name and not old_md.HasField("packageLocation"):
        raise http_error(400, f"data: your {kind}'s package (.py, .zip or .whl), or a built-in {kind}Type")
    md = pb.FunctionMetaData(functionDetails=details, createTime=old_md.createTime)
    if location is not None:
        md.packageLocation.CopyFrom(location)
    elif not type_name:
        md.packageLocation.CopyFrom(old_md.packageLocation)
    if kind == "sink":
        transform = await _updated_transform(worker, merged, sub, old_md)
        if transform is not None:
            md.transformFunctionPackageLocation.CopyFrom(transform)
    for iid, state in old_md.instanceStates.items():
        md.instanceStates[iid] = state
    version = await _submit(worker, fqfn, md, expected)
    return web.json_response({"version": version})


async def delete(request: web.Request) -> web.Response:
    worker, fqfn, kind = _worker(request), _fqfn(request), _kind(request)
    md = _existing(worker, fqfn, kind)
    await _submit(worker, fqfn, None, int(md.version))
    return web.json_response({"deleted": fqfn})


def _config_of(md: pb.FunctionMetaData, kind: str) -> dict[str, Any]:
    d = md.functionDetails
    if kind == "source":
        s = source_from_details(d)
        return {
            "tenant": s.tenant,
            "namespace": s.namespace,
            "name": s.name,
            "className": s.class_name,
            "sourceType": s.source_type,
            "topicName": s.destination_topic,
            "configs": s.config,
            "processingGuarantees": s.processing_guarantees,
            "parallelism": s.parallelism,
            "schemaType": s.schema_type,
            "serdeClassName": s.serde_class_name,
        }
    spec, configs, (type_name, _archive, class_name) = sink_from_details(d)
    return {
        "tenant": spec.tenant,
        "namespace": spec.namespace,
        "name": spec.name,
        "className": None if type_name else class_name,
        "sinkType": type_name,
        "inputs": [i.topic for i in spec.inputs],
        "configs": configs,
        "processingGuarantees": spec.processing_guarantees,
        "parallelism": spec.parallelism,
        "sourceSubscriptionName": spec.subscription_name,
        "retainOrdering": spec.retain_ordering,
        "autoAck": spec.auto_ack,
        "maxMessageRetries": spec.max_message_retries,
        "deadLetterTopic": spec.dead_letter_topic,
        "timeoutMs": spec.timeout_ms,
        **_transform_config(d),
    }


def _transform_config(d: pb.FunctionDetails) -> dict[str, Any]:
    transform = transform_from_details(d)
    return transform.to_config() if transform is not None else {}


async def get(request: web.Request) -> web.Response:
    worker, fqfn, kind = _worker(request), _fqfn(request), _kind(request)
    return web.json_response(_config_of(_existing(worker, fqfn, kind), kind))


async def list_connectors(request: web.Request) -> web.Response:
    worker, kind = _worker(request), _kind(request)
    m = request.match_info
    for field in ("tenant", "namespace"):
        if not is_valid_name(m[field]):
            raise http_error(400, f"{field}: got {m[field]!r} in the path; {NAME_RULE}")
    registry = worker.metadata.registry
    names = registry.list(m["tenant"], m["namespace"])
    wanted = _COMPONENT[kind]
    return web.json_response(
        [
            n
            for n in names
            if (md := registry.get(f"{m['tenant']}/{m['namespace']}/{n}")) is not None
            and md.functionDetails.componentType == wanted
        ]
    )


async def status(request: web.Request) -> web.Response:
    worker, fqfn, kind = _worker(request), _fqfn(request), _kind(request)
    md = _existing(worker, fqfn, kind)
    keys = _instance_keys(worker, fqfn, md)
    statuses = await asyncio.gather(*(_instance_status(worker, request, k) for k in keys))
    return web.json_response(
        {
            "numInstances": len(keys),
            "numRunning": sum(1 for s in statuses if s.get("running")),
            "instances": [
                {"instanceId": split_instance_key(k)[1], "status": connector_status(kind, s)}
                for k, s in zip(keys, statuses, strict=True)
            ],
        }
    )


def _builtins(kind: str) -> list[dict[str, str]]:
    table = BUILTIN_SOURCES if kind == "source" else BUILTIN_SINKS
    return [
        {"name": name, "description": desc, f"{kind}Class": f"{cls.__module__}.{cls.__name__}"}
        for name, (cls, desc) in sorted(table.items())
    ]


async def builtin_sources(request: web.Request) -> web.Response:
    return web.json_response(_builtins("source"))


async def builtin_sinks(request: web.Request) -> web.Response:
    return web.json_response(_builtins("sink"))


async def reload_builtins(request: web.Request) -> web.Response:
    """``reloadBuiltInSources`` / ``reloadBuiltInSinks``: 204, as Pulsar answers.

    The built-in connectors ship inside the engine (:mod:`engine.io.connectors`), not as
    archives in a directory, so there is nothing to read again: the listings are current.
    """
    return web.Response(status=204)


async def worker_connectors(request: web.Request) -> web.Response:
    """Apache's ``ConnectorDefinition`` list: each built-in with its source and/or sink class."""
    names = sorted(set(BUILTIN_SOURCES) | set(BUILTIN_SINKS))
    out = []
    for name in names:
        entry: dict[str, Any] = {"name": name}
        if name in BUILTIN_SOURCES:
            cls, desc = BUILTIN_SOURCES[name]
            entry.update(description=desc, sourceClass=f"{cls.__module__}.{cls.__name__}")
        if name in BUILTIN_SINKS:
            cls, desc = BUILTIN_SINKS[name]
            entry.setdefault("description", desc)
            entry["sinkClass"] = f"{cls.__module__}.{cls.__name__}"
        out.append(entry)
    return web.json_response(out)


def _checked(handler: Any) -> Any:
    """``handler`` of the functions API, for a connector of the path's kind only."""

    async def run(request: web.Request) -> web.StreamResponse:
        _existing(_worker(request), _fqfn(request), _kind(request))
        return await handler(request)

    return run


def add_connector_routes(app: web.Application) -> None:
    """Register the ``/admin/v3/sources``, ``/admin/v3/sinks`` and connector listing routes."""
    app.router.add_get("/admin/v3/sources/builtinsources", builtin_sources)
    app.router.add_get("/admin/v3/sinks/builtinsinks", builtin_sinks)
    app.router.add_get("/admin/v2/worker/connectors", worker_connectors)
    app.router.add_get("/admin/v3/functions/connectors", worker_connectors)  # Apache's older path
    app.router.add_post("/admin/v3/sources/reloadBuiltInSources", reload_builtins)
    app.router.add_post("/admin/v3/sinks/reloadBuiltInSinks", reload_builtins)
    base = "/admin/v3/{kind:sources|sinks}"
    one = base + "/{tenant}/{namespace}/{name}"
    app.router.add_get(base + "/{tenant}/{namespace}", list_connectors)
    app.router.add_post(one, create)
    app.router.add_put(one, update)
    app.router.add_delete(one, delete)
    app.router.add_get(one, get)
    app.router.add_get(one + "/status", status)
    # Control and stats are the functions API's: a connector's instances are scheduled like a function's.
    app.router.add_get(one + "/stats", _checked(functions_routes.function_stats))
    for verb in ("stop", "start", "restart"):
        app.router.add_post(one + f"/{verb}", _checked(getattr(functions_routes, verb)))
