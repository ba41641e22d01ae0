"""``/admin/v3/packages/...``: Pulsar's package management REST API."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from engine.api.errors import http_error
from engine.cluster.packages import PackageError
from engine.packages.names import PACKAGE_TYPES, PackageName, parse_package_name
from engine.packages.registry import PackageRegistry, RegistryError
from engine.worker.worker import Worker

__all__ = ["add_package_routes", "registry_of"]

_REGISTRIES: weakref.WeakKeyDictionary[Worker, PackageRegistry] = weakref.WeakKeyDictionary()
_METADATA_FIELDS = ("description", "contact", "properties")


def registry_of(worker: Worker) -> PackageRegistry:
    """The worker's package registry (one per worker)."""
    registry = _REGISTRIES.get(worker)
    if registry is None:
        assert worker.client is not None
        registry = _REGISTRIES[worker] = PackageRegistry(
            worker.client, worker.topics.namespace, worker.packages
        )
    return registry


def _name(request: web.Request, version: bool = True) -> PackageName:
    m = request.match_info
    text = f"{m['type']}://{m['tenant']}/{m['namespace']}/{m['name']}"
    if version:
        text += f"@{m['version']}"
    try:
        return parse_package_name(text, need_version=version)
    except ValueError as exc:
        raise http_error(400, str(exc))


async def _run(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except RegistryError as exc:
        raise http_error(exc.status, str(exc))
    except PackageError as exc:
        raise http_error(404, str(exc))


def _metadata(raw: bytes) -> dict[str, Any]:
    try:
        meta = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise http_error(400, f"metadata: not valid JSON ({exc})")
    if not isinstance(meta, dict):
        raise http_error(400, "metadata: expected a JSON object with description, contact and properties")
    props = meta.get("properties") or {}
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise http_error(400, f"metadata.properties: got {props!r}; expected a map of strings to strings")
    return {k: meta[k] for k in _METADATA_FIELDS if meta.get(k) is not None}


async def upload(request: web.Request) -> web.Response:
    name = _name(request)
    if not request.content_type.startswith("multipart/"):
        raise http_error(400, "expected multipart/form-data with a file part and a metadata part")
    data: bytes | None = None
    filename = "package"
    meta: dict[str, Any] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        content = bytes(await part.read())
        if part.name == "file":
            data, filename = content, part.filename or name.name
        elif part.name == "metadata":
            meta = _metadata(content)
    if data is None:
        raise http_error(400, "file: the package content is required")
    await _run(registry_of(request.app["worker"]).upload, name, data, filename, meta)
    return web.Response(status=204)


async def download(request: web.Request) -> web.StreamResponse:
    local = await _run(registry_of(request.app["worker"]).download, _name(request))
    return web.FileResponse(local, headers={"Content-Type": "application/octet-stream"})


async def delete(request: web.Request) -> web.Response:
    await _run(registry_of(request.app["worker"]).delete, _name(request))
    return web.Response(status=204)


async def get_metadata(request: web.Request) -> web.Response:
    record = await _run(registry_of(request.app["worker"]).get, _name(request))
    return web.json_response(record.metadata)


async def update_metadata(request: web.Request) -> web.Response:
    meta = _metadata(await request.read())
    await _run(registry_of(request.app["worker"]).update_metadata, _name(request), meta)
    return web.Response(status=204)


async def list_versions(request: web.Request) -> web.Response:
    return web.json_response(await _run(registry_of(request.app["worker"]).versions, _name(request, False)))


async def list_packages(request: web.Request) -> web.Response:
    m = request.match_info
    if m["type"] not in PACKAGE_TYPES:
        raise http_error(400, f"type: got {m['type']!r}; expected one of {', '.join(PACKAGE_TYPES)}")
    registry = registry_of(request.app["worker"])
    return web.json_response(await _run(registry.list, m["type"], m["tenant"], m["namespace"]))


def add_package_routes(app: web.Application) -> None:
    """Mount the ``/admin/v3/packages`` routes."""
    ns = "/admin/v3/packages/{type}/{tenant}/{namespace}"
    version = ns + "/{name}/{version}"
    app.router.add_get(ns, list_packages)
    app.router.add_get(ns + "/{name}", list_versions)
    app.router.add_post(version, upload)
    app.router.add_get(version, download)
    app.router.add_delete(version, delete)
    app.router.add_get(version + "/metadata", get_metadata)
    app.router.add_put(version + "/metadata", update_metadata)
