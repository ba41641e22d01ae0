"""``/admin/v3/functions``: register, update, delete, get, list, status, stats, control, state, trigger."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from typing import Any

import orjson
import pulsar
from aiohttp import BodyPartReader, web
from aiohttp.web_request import FileField

from engine.api.builtins_routes import add_builtin_routes
from engine.api.errors import http_error
from engine.cluster.packages import PackageError
from engine.cluster.registry import StaleVersion
from engine.cluster.scheduler import instance_key, split_instance_key
from engine.cluster.subscriptions import remove_subscriptions
from engine.config import ConfigError, parse_function_config, resolve
from engine.config.details import config_from_details, to_details
from engine.config.validation import FunctionSpec
from engine.packages.locations import store_package
from engine.packages.routes import registry_of
from engine.proto import Function_pb2 as pb
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


async def _parts(request: web.Request) -> list[tuple[str, str | None, bytes]]:
    """``(name, filename, content)`` of every part of a multipart body."""
    out: list[tuple[str, str | None, bytes]] = []
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            return out
        if isinstance(part, BodyPartReader):
            out.append((part.name or "", part.filename, bytes(await part.read())))


def _worker(request: web.Request) -> Worker:
    return request.app["worker"]


def _fqfn(request: web.Request) -> str:
    m = request.match_info
    return f"{m['tenant']}/{m['namespace']}/{m['name']}"


def _existing(worker: Worker, fqfn: str) -> pb.FunctionMetaData:
    md = worker.metadata.registry.get(fqfn)
    if md is None:
        raise http_error(404, f"Function {fqfn} doesn't exist")
    return md


async def _read_submission(
    request: web.Request,
) -> tuple[dict[str, Any], bytes | None, str | None, str | None]:
    """``(functionConfig, package bytes, package filename, package url)`` from a multipart or JSON body."""
    config: dict[str, Any] = {}
    data = filename = url = None
    if request.content_type.startswith("multipart/"):
        for name, part_filename, content in await _parts(request):
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
        try:
            body = await request.json(loads=orjson.loads)
        except Exception:
            raise http_error(
                400, "expected multipart/form-data with functionConfig, or a JSON functionConfig"
            )
        config = body.get("functionConfig", body) if isinstance(body, dict) else {}
        url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(config, dict):
        raise http_error(400, "functionConfig: expected a JSON object")
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


async def register(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    config_dict, data, filename, url = await _read_submission(request)
    config_dict = _with_identity(config_dict, fqfn)
    if filename:
        config_dict["py"] = filename
    try:
        spec = resolve(parse_function_config(config_dict))
    except ConfigError as exc:
        raise _config_error(exc)
    if worker.metadata.registry.get(fqfn) is not None:
        raise http_error(400, f"Function {fqfn} already exists")
    location = await store_package(worker, data, filename, url)
    if location is None:
        raise http_error(400, "data: a package (.py, .zip or .whl) or a file:// url is required")
    md = pb.FunctionMetaData(
        functionDetails=to_details(spec), packageLocation=location, createTime=int(time.time() * 1000)
    )
    version = await _submit(worker, fqfn, md, worker.metadata.registry.current_version(fqfn))
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
    location = await store_package(worker, data, filename, url) or old_md.packageLocation
    md = pb.FunctionMetaData(
        functionDetails=to_details(spec), packageLocation=location, createTime=old_md.createTime
    )
    for iid, state in old_md.instanceStates.items():
        md.instanceStates[iid] = state
    version = await _submit(worker, fqfn, md, expected)
    return web.json_response({"version": version, "warnings": _warnings(spec)})


async def deregister(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    await _submit(worker, fqfn, None, int(md.version))
    spec = resolve(config_from_details(md.functionDetails))
    if spec.cleanup_subscription and worker.client is not None:
        prefix = fqfn + ":"

        def stopped() -> bool:
            assigned = any(k.startswith(prefix) for k in worker.table.assignments)
            running = any(k.startswith(prefix) and s.instance for k, s in worker.runtime.slots.items())
            return not assigned and not running

        await remove_subscriptions(worker.client, spec, stopped)
    return web.json_response({"deleted": fqfn})


async def get_function(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    config = config_from_details(md.functionDetails).to_dict()
    return web.json_response(config)


async def list_functions(request: web.Request) -> web.Response:
    m = request.match_info
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


def _local_status(worker: Worker, key: str) -> dict[str, Any]:
    st = worker.runtime.status(key)
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
    return remote if remote is not None else _local_status(worker, key)


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


# -- state ------------------------------------------------------------------------------------------------


async def get_state(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    _existing(worker, fqfn)
    key = request.match_info["key"]
    store = worker.state_store
    assert store is not None
    counter = await asyncio.to_thread(store.get_counter, fqfn, key)
    if counter is not None:
        return web.json_response({"key": key, "numberValue": counter, "version": 0})
    value = await asyncio.to_thread(store.get_value, fqfn, key)
    if value is None:
        raise http_error(404, f"key {key!r} of {fqfn} does not exist")
    try:
        return web.json_response({"key": key, "stringValue": value.decode("utf-8"), "version": 0})
    except UnicodeDecodeError:
        return web.json_response({"key": key, "byteValue": base64.b64encode(value).decode(), "version": 0})


async def put_state(request: web.Request) -> web.Response:
    worker, fqfn = _worker(request), _fqfn(request)
    _existing(worker, fqfn)
    key = request.match_info["key"]
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("state")
        body = orjson.loads(raw.file.read() if isinstance(raw, FileField) else (raw or "{}"))
    else:
        body = await request.json(loads=orjson.loads)
    if not isinstance(body, dict):
        raise http_error(400, "state: expected a FunctionState JSON object")
    if body.get("key") not in (None, key):
        raise http_error(400, f"key: got {body.get('key')!r} in the body but {key!r} in the path")
    store = worker.state_store
    assert store is not None
    if body.get("numberValue") is not None:
        value = int(body["numberValue"])
        await asyncio.to_thread(store.commit, fqfn, {key: value}, {key}, {})
    elif body.get("stringValue") is not None:
        await asyncio.to_thread(store.commit, fqfn, {}, set(), {key: str(body["stringValue"]).encode()})
    elif body.get("byteValue") is not None:
        await asyncio.to_thread(store.commit, fqfn, {}, set(), {key: base64.b64decode(body["byteValue"])})
    else:
        raise http_error(400, "state: give numberValue, stringValue or byteValue")
    return web.json_response({"key": key})


# -- trigger ------------------------------------------------------------------------------------------------


async def trigger(request: web.Request) -> web.Response:
    """Send a value to an input and return the output it produced (matched by a unique key)."""
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    spec = resolve(config_from_details(md.functionDetails))
    fields: dict[str, Any] = {}
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.post()
        for name, item in form.items():
            fields[name] = item.file.read() if hasattr(item, "file") else str(item).encode()
    else:
        body = await request.json(loads=orjson.loads)
        fields = {k: (v.encode() if isinstance(v, str) else v) for k, v in body.items()}
    value = fields.get("data") or fields.get("dataStream") or fields.get("triggerValue")
    if value is None:
        raise http_error(400, "data: a trigger value is required")
    topic = fields.get("topic", b"").decode() or spec.inputs[0].topic
    if spec.output is None:
        raise http_error(400, f"{fqfn} has no output topic to read the result from")
    token = f"trigger-{uuid.uuid4().hex}"
    client = worker.client
    assert client is not None

    def run() -> bytes | None:
        reader = client.create_reader(spec.output, pulsar.MessageId.latest)
        try:
            producer = client.create_producer(topic)
            producer.send(value, partition_key=token)
            producer.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    msg = reader.read_next(500)
                except pulsar.Timeout:
                    continue
                if msg.partition_key() == token:
                    return bytes(msg.data())
            return None
        finally:
            reader.close()

    out = await asyncio.to_thread(run)
    if out is None:
        raise http_error(408, f"{fqfn} produced no output for the trigger value within 10 s")
    return web.Response(body=out, content_type="application/octet-stream")


# -- packages -----------------------------------------------------------------------------------------------


async def upload(request: web.Request) -> web.Response:
    worker = _worker(request)
    form = await request.post()
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
    try:
        local = await asyncio.to_thread(registry_of(worker).fetch_path, path)
    except PackageError as exc:
        raise http_error(404, f"path: {exc}")
    return web.FileResponse(local)


async def download_function(request: web.Request) -> web.StreamResponse:
    worker, fqfn = _worker(request), _fqfn(request)
    md = _existing(worker, fqfn)
    loc = md.packageLocation
    local = await asyncio.to_thread(worker.packages.fetch, loc.packagePath, loc.originalFileName or "package")
    return web.FileResponse(local)


async def leader_write(request: web.Request) -> web.Response:
    """Internal: a metadata change forwarded by another worker to the leader."""
    worker, fqfn = _worker(request), _fqfn(request)
    if not worker.election.is_leader:
        raise http_error(503, f"{worker.config.worker_id} is not the leader")
    body = await request.json(loads=orjson.loads)
    md = pb.FunctionMetaData.FromString(base64.b64decode(body["metadata"])) if body.get("metadata") else None
    try:
        version = await worker.metadata.propose(fqfn, md, body.get("expectedVersion"), worker.duties.epoch)
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
    app.router.add_get(fn + "/state/{key}", get_state)
    app.router.add_post(fn + "/state/{key}", put_state)
    app.router.add_get(inst + "/status", instance_status)
    app.router.add_get(inst + "/stats", instance_stats)
    app.router.add_post(inst + "/stop", stop)
    app.router.add_post(inst + "/start", start)
    app.router.add_post(inst + "/restart", restart)
