"""``/admin/v3/functions``: register, update, delete, get, list, status, stats, control, state, trigger."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_request import FileField
from google.protobuf.message import DecodeError

from engine.api.auth_middleware import record_submitter
from engine.api.bodies import read_form, read_json, read_parts
from engine.api.builtins_routes import add_builtin_routes
from engine.api.common import existing as _existing
from engine.api.common import expected_version
from engine.api.common import fqfn_of as _fqfn
from engine.api.common import worker_of as _worker
from engine.api.errors import http_error
from engine.api.state_routes import add_state_routes
from engine.api.trigger_route import trigger
from engine.cluster.packages import PackageError
from engine.cluster.registry import StaleVersion
from engine.cluster.scheduler import instance_key, split_instance_key
from engine.config import ConfigError, parse_function_config, resolve
from engine.config.details import config_from_details, to_details
from engine.config.validation import FunctionSpec
from engine.io.details import is_connector, sink_from_details, source_from_details
from engine.packages.locations import store_package
from engine.packages.routes import registry_of
from engine.proto import Function_pb2 as pb
from engine.security import NAME_RULE, check_submission, is_valid_name
from engine.security.packages import STORED_PACKAGE_RULE, is_stored_package_path
from engine.worker.worker import NotLeader, Worker

__all__ = ["IMMUTABLE_FIELDS", "add_function_routes"]

#: What an update may not change (Pulsar's ``validateUpdate``): resolved attribute -> config field.
IMMUTABLE_FIELDS = {
    "processing_guarantees": "processingGuarantees",
    "retain_ordering": "retainOrdering",
    "retain_key_ordering": "retainKeyOrdering",
    "auto_ack": "autoAck",
    "subscription_name": "subName",
    "output_serde_class_name": "outputSerdeClassName",
    "output_schema_type": "outputSchemaType",
}
INTERNAL = "X-Magnetar-Internal"

log = logging.getLogger(__name__)


async def _read_submission(
    request: web.Request,
) -> tuple[dict[str, Any], bytes | None, str | None, str | None]:
    """``(functionConfig, package bytes, package filename, package url)`` from a multipart or JSON body."""
    config: dict[str, Any] = {}
    data = filename = url = None
    if request.content_type.startswith("multipart/"):
        for name, part_filename, content in await read_parts(request):
            if name == "functionConfig":
                try:
                    config = orjson.loads(content) if content.strip() else {}
                except orjson.JSONDecodeError as exc:
                    raise http_error(400, f"functionConfig: not valid JSON ({exc})")
            elif name == "data":
                data = content
                filename = part_filename or "package.py"
            elif name == "url":
                url = content.decode().strip() or None
    else:
        body = await read_json(request, "functionConfig")
        if not isinstance(body, dict):
            raise http_error(
                400, "expected multipart/form-data with functionConfig, or a JSON functionConfig object"
            )
        config = body.get("functionConfig", body)
        url = body.get("url")
    if not isinstance(config, dict):
        raise http_error(400, "functionConfig: expected a JSON object")
    if url is not None and not isinstance(url, str):
        raise http_error(400, f"url: got {url!r}; expected a file:// URL string")
    return config, data, filename, url


def _config_error(exc: ConfigError) -> web.HTTPException:
    return http_error(400, str(exc))


def _with_identity(config: dict[str, Any], fqfn: str) -> dict[str, Any]:
    tenant, namespace, name = fqfn.split("/")
    for key, value in (("tenant", tenant), ("namespace", namespace), ("name", name)):
        given = config.get(key)
        if given not in (None, value):
            raise http_error(400, f"{key}: got {given!r} in functionConfig but {value!r} in the path")
        config[key] = value
    return config


async def _submit(worker: Worker, fqfn: str, md: pb.FunctionMetaData | None, expected: int | None) -> int:
    try:
        return await worker.submit(fqfn, md, expected)
    except StaleVersion as exc:
        raise http_error(409, str(exc))
    except NotLeader as exc:
        raise http_error(503, str(exc))


def _checked(worker: Worker, spec: FunctionSpec) -> FunctionSpec:
    """``spec`` if it passes this worker's names, reserved-topic and limit rules (else a 400)."""
    try:
        check_submission(spec, worker.config.security, worker.metadata.registry.items())
    except ConfigError as exc:
        raise _config_error(exc)
    return spec


async def register(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    # The version this create is based on is taken before anything awaits: of concurrent
    # creates of one name the leader accepts the first and answers the rest 409.
    expected = worker.metadata.registry.current_version(fqfn)
    if worker.metadata.registry.get(fqfn) is not None:
        raise http_error(409, f"Function {fqfn} already exists")
    config_dict, data, filename, url = await _read_submission(request)
    config_dict = _with_identity(config_dict, fqfn)
    if filename:
        config_dict["py"] = filename
    try:
        spec = resolve(parse_function_config(config_dict))
    except ConfigError as exc:
        raise _config_error(exc)
    _checked(worker, spec)
    if worker.metadata.registry.current_version(fqfn) != expected:
        raise http_error(409, f"Function {fqfn} was created or changed by a concurrent request")
    location = await store_package(worker, data, filename, url)
    if location is None:
        raise http_error(400, "data: a package (.py, .zip or .whl) or a file:// url is required")
    md = pb.FunctionMetaData(
        functionDetails=to_details(spec), packageLocation=location, createTime=int(time.time() * 1000)
    )
    record_submitter(request, md)
    version = await _submit(worker, fqfn, md, expected)
    return web.json_response({"version": version, "warnings": _warnings(spec)})


def _warnings(spec: FunctionSpec) -> list[str]:
    """The fields that are set but have no effect, for the client to show."""
    return [f"{name} is accepted but has no effect: {why}" for name, why in spec.ignored]


def _check_update(old: FunctionSpec, new: FunctionSpec) -> None:
    for attr, camel in IMMUTABLE_FIELDS.items():
        before, after = getattr(old, attr), getattr(new, attr)
        if before != after:
            raise http_error(
                400, f"{camel}: got {after!r}; it cannot be changed by an update (is {before!r})"
            )
    old_inputs = {(i.topic, i.is_regex_pattern) for i in old.inputs}
    new_inputs = {(i.topic, i.is_regex_pattern) for i in new.inputs}
    if old_inputs != new_inputs:
        raise http_error(
            400,
            f"inputs: got {sorted(t for t, _ in new_inputs)}; input topics cannot be changed by an update "
            f"(are {sorted(t for t, _ in old_inputs)})",
        )


async def update(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    old_md = _existing(worker, fqfn)
    expected = int(old_md.version)
    config_dict, data, filename, url = await _read_submission(request)
    config_dict = _with_identity(config_dict, fqfn)
    old_config = config_from_details(old_md.functionDetails)
    merged = {**old_config.to_dict(), **{k: v for k, v in config_dict.items() if v is not None}}
    if filename:
        merged["py"] = filename
    try:
        new_config = parse_function_config(merged)
        spec = resolve(new_config)
        _check_update(resolve(old_config), spec)
    except ConfigError as exc:
        raise _config_error(exc)
    _checked(worker, spec)
    location = await store_package(worker, data, filename, url) or old_md.packageLocation
    md = pb.FunctionMetaData(
        functionDetails=to_details(spec), packageLocation=location, createTime=old_md.createTime
    )
    for iid, state in old_md.instanceStates.items():
        md.instanceStates[iid] = state
    record_submitter(request, md)
    version = await _submit(worker, fqfn, md, expected)
    return web.json_response({"version": version, "warnings": _warnings(spec)})


async def deregister(request: web.Request) -> web.Response:
    """Delete a function; each worker that ran it removes its subscriptions once its instances stop."""
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    await _submit(worker, fqfn, None, int(md.version))
    await _delete_state(worker, fqfn)
    return web.json_response({"deleted": fqfn})


async def _delete_state(worker: Worker, fqfn: str) -> None:
    """Remove a deleted function's state (as Pulsar does), once its instances here have stopped."""
    deadline = time.monotonic() + 10
    while worker.runtime.runs(fqfn) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the instances settle their last batch before stopping
    if worker.state_store is not None:
        await asyncio.to_thread(worker.state_store.delete_namespace, fqfn)


async def get_function(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    config = config_from_details(md.functionDetails).to_dict()
    return web.json_response(config)


async def list_functions(request: web.Request) -> web.Response:
    m = request.match_info
    for field in ("tenant", "namespace"):
        if not is_valid_name(m[field]):
            raise http_error(400, f"{field}: got {m[field]!r} in the path; {NAME_RULE}")
    return web.json_response(_worker(request).metadata.registry.list(m["tenant"], m["namespace"]))


# -- instances: status, stats, control ---------------------------------------------------------------


def _owner(worker: Worker, key: str) -> str | None:
    a = worker.table.assignments.get(key)
    return a.workerId if a is not None else None


def _worker_url(worker: Worker, worker_id: str) -> str | None:
    if worker_id == worker.config.worker_id:
        return worker.config.url
    for member in worker.table.members:
        if member.get("workerId") == worker_id:
            return str(member["url"])
    return None


async def _on_owner(worker: Worker, request: web.Request, key: str, method: str, suffix: str) -> Any:
    """Run a per-instance call on the worker that owns ``key`` (proxied when remote)."""
    fqfn, iid = split_instance_key(key)
    owner = _owner(worker, key)
    if owner is None:
        raise http_error(404, f"instance {iid} of {fqfn} is not assigned to any worker")
    if owner == worker.config.worker_id or request.headers.get(INTERNAL):
        return None
    url = _worker_url(worker, owner)
    if url is None:
        raise http_error(503, f"instance {key} is on worker {owner}, whose address is unknown")
    assert worker.http is not None
    try:
        async with worker.http.request(
            method, f"{url}/admin/v3/functions/{fqfn}/{iid}/{suffix}", headers={INTERNAL: "1"}, timeout=5
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                raise http_error(
                    resp.status, body.get("reason", str(body)) if isinstance(body, dict) else str(body)
                )
            return body
    except (asyncio.TimeoutError, OSError) as exc:
        return {"running": False, "error": f"worker {owner} unreachable: {exc}", "workerId": owner}


def _instance_keys(worker: Worker, fqfn: str, md: pb.FunctionMetaData) -> list[str]:
    return [instance_key(fqfn, i) for i in range(max(1, md.functionDetails.parallelism))]


async def _local_status(worker: Worker, key: str) -> dict[str, Any]:
    st = await worker.runtime.status_async(key)
    if st is None:
        return {
            "running": False,
            "error": "not running on its worker yet",
            "numRestarts": 0,
            "workerId": _owner(worker, key) or "",
        }
    return st


async def _instance_status(worker: Worker, request: web.Request, key: str) -> dict[str, Any]:
    remote = await _on_owner(worker, request, key, "GET", "status")
    return remote if remote is not None else await _local_status(worker, key)


async def instance_status(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    _existing(worker, fqfn)
    key = instance_key(fqfn, int(request.match_info["instance"]))
    return web.json_response(await _instance_status(worker, request, key))


async def function_status(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    keys = _instance_keys(worker, fqfn, md)
    statuses = await asyncio.gather(*(_instance_status(worker, request, k) for k in keys))
    instances = [
        {"instanceId": split_instance_key(k)[1], "status": s} for k, s in zip(keys, statuses, strict=True)
    ]
    return web.json_response(
        {
            "numInstances": len(keys),
            "numRunning": sum(1 for s in statuses if s.get("running")),
            "instances": instances,
        }
    )


def _stats_of(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "receivedTotal": status.get("numReceived", 0),
        "processedSuccessfullyTotal": status.get("numSuccessfullyProcessed", 0),
        "systemExceptionsTotal": status.get("numSystemExceptions", 0),
        "userExceptionsTotal": status.get("numUserExceptions", 0),
        "avgProcessLatency": status.get("averageLatency", 0.0),
        "lastInvocation": status.get("lastInvocationTime", 0),
    }


async def instance_stats(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    _existing(worker, fqfn)
    key = instance_key(fqfn, int(request.match_info["instance"]))
    return web.json_response(_stats_of(await _instance_status(worker, request, key)))


async def function_stats(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    keys = _instance_keys(worker, fqfn, md)
    stats = [
        _stats_of(s) for s in await asyncio.gather(*(_instance_status(worker, request, k) for k in keys))
    ]
    total = {
        k: sum(s[k] for s in stats)
        for k in (
            "receivedTotal",
            "processedSuccessfullyTotal",
            "systemExceptionsTotal",
            "userExceptionsTotal",
        )
    }
    total["instances"] = [
        {"instanceId": split_instance_key(k)[1], "metrics": s} for k, s in zip(keys, stats, strict=True)
    ]
    return web.json_response(total)


async def _set_states(request: web.Request, state: Any) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    ids = (
        [int(request.match_info["instance"])]
        if "instance" in request.match_info
        else list(range(max(1, md.functionDetails.parallelism)))
    )
    new = pb.FunctionMetaData()
    new.CopyFrom(md)
    for iid in ids:
        if iid >= max(1, md.functionDetails.parallelism) or iid < 0:
            raise http_error(
                400, f"instance {iid}: {fqfn} has instances 0..{md.functionDetails.parallelism - 1}"
            )
        new.instanceStates[iid] = state
    await _submit(worker, fqfn, new, int(md.version))
    return web.json_response({"instances": ids, "state": pb.FunctionState.Name(state)})


async def stop(request: web.Request) -> web.Response:
    return await _set_states(request, pb.STOPPED)


async def start(request: web.Request) -> web.Response:
    return await _set_states(request, pb.RUNNING)


async def restart(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    if "instance" in request.match_info:
        keys = [instance_key(fqfn, int(request.match_info["instance"]))]
    else:
        keys = _instance_keys(worker, fqfn, md)
    for key in keys:
        remote = await _on_owner(worker, request, key, "POST", "restart")
        if remote is None:
            await worker.runtime.restart(key)
    return web.json_response({"restarted": [split_instance_key(k)[1] for k in keys]})


# -- packages -----------------------------------------------------------------------------------------------


async def upload(request: web.Request) -> web.Response:
    worker = _worker(request)
    form = await read_form(request)
    data = form.get("data")
    path = form.get("path")
    if not isinstance(data, FileField):
        raise http_error(400, "data: a file is required")
    content = data.file.read()
    if path:  # ``download --path`` finds it under the same path
        location = await asyncio.to_thread(
            registry_of(worker).put_path, str(path), content, os.path.basename(str(path))
        )
    else:
        location = await asyncio.to_thread(worker.packages.put, content, os.path.basename(data.filename))
    return web.json_response({"path": location})


async def download(request: web.Request) -> web.StreamResponse:
    worker = _worker(request)
    path = request.query.get("path")
    if not path:
        raise http_error(400, "path: the package path is required")
    registry = registry_of(worker)
    uploaded = await asyncio.to_thread(registry.is_uploaded_path, path)
    if not uploaded and not is_stored_package_path(path):  # never a file of the worker's own
        if path.startswith(("/", "file:")) or ".." in path.split("/"):
            raise http_error(400, f"path: got {path!r}; {STORED_PACKAGE_RULE} or a path uploaded to")
        raise http_error(404, f"path: nothing was uploaded to {path!r}")
    try:
        local = await asyncio.to_thread(registry.fetch_path, path)
    except PackageError as exc:
        raise http_error(404, f"path: {exc}")
    return web.FileResponse(local)


async def download_function(request: web.Request) -> web.StreamResponse:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    loc = md.packageLocation
    local = await asyncio.to_thread(worker.packages.fetch, loc.packagePath, loc.originalFileName or "package")
    return web.FileResponse(local)


def _leader_metadata(fqfn: str, body: Any) -> tuple[pb.FunctionMetaData | None, int | None]:
    """Decode and validate a forwarded change exactly as a submission is validated (else a 400)."""
    expected = expected_version(body, "metadata")
    raw = body.get("metadata")
    if raw is None:
        return None, expected
    if not isinstance(raw, str):
        raise http_error(400, f"metadata: got {raw!r}; expected base64 of a FunctionMetaData")
    try:
        md = pb.FunctionMetaData.FromString(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError, DecodeError):
        raise http_error(400, "metadata: expected base64 of a FunctionMetaData")
    d = md.functionDetails
    if f"{d.tenant}/{d.namespace}/{d.name}" != fqfn:
        raise http_error(
            400, f"metadata: names {d.tenant}/{d.namespace}/{d.name!s} but the path names {fqfn}"
        )
    builtin_connector = is_connector(d) and bool(d.builtin) and not md.packageLocation.packagePath
    if not builtin_connector and not is_stored_package_path(md.packageLocation.packagePath):
        raise http_error(
            400, f"packageLocation: got {md.packageLocation.packagePath!r}; {STORED_PACKAGE_RULE}"
        )
    transform = md.transformFunctionPackageLocation.packagePath
    if transform and not is_stored_package_path(transform):
        raise http_error(400, f"transformFunctionPackageLocation: got {transform!r}; {STORED_PACKAGE_RULE}")
    return md, expected


def _check_connector(details: pb.FunctionDetails) -> None:
    """A source's or sink's details validate as its submission did (a 400 naming the problem)."""
    try:
        if details.componentType == pb.FunctionDetails.SOURCE:
            source_from_details(details)
        else:
            sink_from_details(details)
    except ConfigError as exc:
        raise _config_error(exc)


async def leader_write(request: web.Request) -> web.Response:
    """Internal: a metadata change forwarded by another worker to the leader."""
    worker, fqfn = _worker(request), _fqfn(request)
    if not worker.election.is_leader:
        raise http_error(503, f"{worker.config.worker_id} is not the leader")
    md, expected = _leader_metadata(fqfn, await read_json(request, "leader"))
    if md is not None and is_connector(md.functionDetails):
        _check_connector(md.functionDetails)
        parallelism = max(1, md.functionDetails.parallelism)
        bad = [iid for iid in md.instanceStates if not 0 <= iid < parallelism]
        if bad:
            raise http_error(400, f"instanceStates: instances {bad} do not exist (0..{parallelism - 1})")
    elif md is not None:
        try:
            spec = resolve(config_from_details(md.functionDetails))
        except ConfigError as exc:
            raise _config_error(exc)
        _checked(worker, spec)
        md.functionDetails.CopyFrom(to_details(spec))  # stored exactly as a submission stores it
        parallelism = max(1, spec.parallelism)
        bad = [iid for iid in md.instanceStates if not 0 <= iid < parallelism]
        if bad:
            raise http_error(400, f"instanceStates: instances {bad} do not exist (0..{parallelism - 1})")
    try:
        version = await worker.metadata.propose(fqfn, md, expected, worker.duties.epoch)
    except StaleVersion as exc:
        raise http_error(409, str(exc))
    return web.json_response({"version": version})


def add_function_routes(app: web.Application) -> None:
    """Mount every ``/admin/v3/functions`` route."""
    base = "/admin/v3/functions"
    fn = base + "/{tenant}/{namespace}/{name}"
    inst = fn + "/{instance:\\d+}"
    add_builtin_routes(app)  # before "/{tenant}/{namespace}", which would match them too
    app.router.add_post(base + "/upload", upload)
    app.router.add_get(base + "/download", download)
    app.router.add_put(base + "/leader/{tenant}/{namespace}/{name}", leader_write)
    app.router.add_get(base + "/{tenant}/{namespace}", list_functions)
    app.router.add_post(fn, register)
    app.router.add_put(fn, update)
    app.router.add_delete(fn, deregister)
    app.router.add_get(fn, get_function)
    app.router.add_get(fn + "/status", function_status)
    app.router.add_get(fn + "/stats", function_stats)
    app.router.add_post(fn + "/stop", stop)
    app.router.add_post(fn + "/start", start)
    app.router.add_post(fn + "/restart", restart)
    app.router.add_post(fn + "/trigger", trigger)
    app.router.add_get(fn + "/download", download_function)
    add_state_routes(app, fn)
    app.router.add_get(inst + "/status", instance_status)
    app.router.add_get(inst + "/stats", instance_stats)
    app.router.add_post(inst + "/stop", stop)
    app.router.add_post(inst + "/start", start)
    app.router.add_post(inst + "/restart", restart)
