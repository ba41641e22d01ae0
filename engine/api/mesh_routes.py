"""``/admin/v3/meshes``: create, update, delete, get, list, status and graph of a Function Mesh.

A create or update is multipart: ``mesh`` (the document, YAML or JSON, either form) and
a ``data`` part for each package the members name by file (its filename is the
package's base name); a member may instead name a ``file://``, ``http(s)://`` or
``function://`` URL. A JSON body ``{"mesh": {...}}`` works when every package is a URL.
Everything is validated before anything is stored, and the mesh with all its members is
written as one record through the leader (``/admin/v3/meshes/leader/...``, internal).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import orjson
import yaml
from aiohttp import web

from engine.api.auth_middleware import record_submitter
from engine.api.bodies import read_json, read_parts
from engine.api.common import expected_version, fqfn_of, worker_of
from engine.api.errors import http_error
from engine.api.functions_routes import _delete_state, _instance_keys, _instance_status
from engine.cluster.registry import StaleVersion
from engine.config import ConfigError
from engine.function.errors import FunctionLoadError
from engine.io.connector_config import connector_of
from engine.io.loader import connector_class
from engine.mesh.fused_source import chain_of
from engine.mesh.model import MemberKind
from engine.mesh.plan import MeshPlan, plan_mesh
from engine.mesh.record import MemberRecord, MeshChange, MeshRecord, mesh_key
from engine.mesh.render import FORMATS, render
from engine.mesh.status import MeshSampler, mesh_status
from engine.mesh.submit import LeaderRejected, submit_mesh
from engine.mesh.versions import STORED_PACKAGE_SCHEME, MemberConflict, package_identity
from engine.packages.locations import store_package
from engine.proto import Function_pb2 as pb
from engine.security import NAME_RULE, check_submission, is_valid_name
from engine.security.packages import STORED_PACKAGE_RULE, is_stored_package_path
from engine.worker.worker import NotLeader, Worker

__all__ = ["add_mesh_routes"]

_SAMPLER = web.AppKey("mesh-sampler", MeshSampler)


def _mesh_error(exc: ConfigError) -> web.HTTPException:
    return http_error(400, str(exc))


async def _read_document(request: web.Request) -> tuple[Any, dict[str, bytes]]:
    """``(document, packages by file name)`` of a create or update."""
    if request.content_type.startswith("multipart/"):
        doc: Any = None
        packages: dict[str, bytes] = {}
        for name, filename, content in await read_parts(request):
            if name == "mesh":
                try:
                    doc = yaml.safe_load(content.decode("utf-8"))  # YAML is a superset of JSON
                except (yaml.YAMLError, UnicodeDecodeError) as exc:
                    raise http_error(400, f"mesh: cannot be parsed as YAML or JSON ({exc})")
            elif name == "data":
                if not filename:
                    raise http_error(400, "data: each package part needs a filename")
                packages[os.path.basename(filename)] = content
        if doc is None:
            raise http_error(400, "mesh: the mesh document (a part named mesh) is required")
        return doc, packages
    body = await read_json(request, "mesh")
    if not isinstance(body, dict) or "mesh" not in body:
        raise http_error(400, "expected multipart/form-data with a mesh part, or a JSON object with mesh")
    return body["mesh"], {}


def _plan(request: web.Request, doc: Any) -> MeshPlan:
    m = request.match_info
    tenant, namespace, name = fqfn_of(request).split("/")
    try:
        plan = plan_mesh(doc, tenant, namespace)
    except ConfigError as exc:
        raise _mesh_error(exc)
    if plan.spec.name != name:
        raise http_error(400, f"name: got {plan.spec.name!r} in the mesh but {m['name']!r} in the path")
    return plan


def _check_members(worker: Worker, plan: MeshPlan) -> None:
    """This worker's names, reserved-topic and limit rules, and that built-in connectors exist."""
    problems = []
    for member in plan.stored:
        try:
            if member.function is not None:
                check_submission(member.function, worker.config.security, worker.metadata.registry.items())
            if member.kind is not MemberKind.FUNCTION:
                kind = member.kind.value
                type_name, _archive, _cls = connector_of(member.member.config, kind)
                if type_name:
                    connector_class(kind, type_name, None, None, worker.config.data_dir)
                chain = chain_of(member.details)
                fused_sink = chain.get("sink") if chain is not None else None
                if fused_sink and fused_sink.get("sinkType"):  # the sink a fused source writes to
                    connector_class("sink", fused_sink["sinkType"], None, None, worker.config.data_dir)
        except (ConfigError, FunctionLoadError) as exc:
            problems.append(f"{member.kind.value} {member.name}: {exc}")
    if problems:
        raise http_error(400, "invalid mesh:\n" + "\n".join(f"  - {p}" for p in problems))


async def _location(
    worker: Worker, member_name: str, package: str, packages: dict[str, bytes], old: MemberRecord | None
) -> pb.PackageLocationMetaData:
    if "://" in package:
        location = await store_package(worker, None, None, package)
        assert location is not None
        return location
    base = os.path.basename(package)
    if base in packages:
        digest = hashlib.sha256(packages[base]).hexdigest()
        if old is not None and package_identity(old.metadata.packageLocation) == (
            f"{STORED_PACKAGE_SCHEME}{digest}",
            base,
        ):
            return old.metadata.packageLocation  # the same code again: nothing to store, nothing changes
        location = await store_package(worker, packages[base], base, None)
        assert location is not None
        return location
    if old is not None and old.metadata.packageLocation.originalFileName == base:
        return old.metadata.packageLocation  # an update that does not upload the same package again
    raise http_error(400, f"{member_name}: package {package!r} was not uploaded with the mesh (a data part)")


async def _change(
    request: web.Request, worker: Worker, plan: MeshPlan, packages: dict[str, bytes], old: MeshRecord | None
) -> MeshChange:
    members = []
    for member in plan.stored:
        where = f"{member.kind.value} {member.name}"
        md = pb.FunctionMetaData(functionDetails=member.details, createTime=int(time.time() * 1000))
        before = old.member(member.name) if old is not None else None
        if member.member.package:
            md.packageLocation.CopyFrom(
                await _location(worker, where, member.member.package, packages, before)
            )
        elif member.kind is MemberKind.FUNCTION:
            raise http_error(
                400, f"{where}: py: the function's package is required (py, python.py or pyLocation)"
            )
        record_submitter(request, md)
        members.append(MemberRecord(member.name, member.kind.value, md))
    return MeshChange(plan.spec.fqmn, plan.spec.document, members, plan.warnings)


async def _submit(worker: Worker, fqmn: str, change: MeshChange | None, expected: int | None) -> MeshRecord:
    try:
        return await submit_mesh(worker, fqmn, change, expected)
    except MemberConflict as exc:
        raise http_error(409, str(exc))
    except StaleVersion as exc:
        raise http_error(409, str(exc))
    except NotLeader as exc:
        raise http_error(503, str(exc))
    except LeaderRejected as exc:
        raise http_error(exc.status, str(exc))


def _existing(worker: Worker, fqmn: str) -> MeshRecord:
    mesh = worker.metadata.registry.mesh(mesh_key(fqmn))
    if mesh is None:
        raise http_error(404, f"Mesh {fqmn} doesn't exist")
    return mesh


def _answer(record: MeshRecord) -> dict[str, Any]:
    return {"version": record.version, "warnings": record.warnings, **record.diff}


async def create(request: web.Request) -> web.Response:
    worker, fqmn = worker_of(request), fqfn_of(request)
    key = mesh_key(fqmn)
    expected = worker.metadata.registry.current_version(key)
    if worker.metadata.registry.mesh(key) is not None:
        raise http_error(409, f"Mesh {fqmn} already exists")
    doc, packages = await _read_document(request)
    plan = _plan(request, doc)
    _check_members(worker, plan)
    change = await _change(request, worker, plan, packages, None)
    return web.json_response(_answer(await _submit(worker, fqmn, change, expected)))


async def update(request: web.Request) -> web.Response:
    worker, fqmn = worker_of(request), fqfn_of(request)
    old = _existing(worker, fqmn)
    doc, packages = await _read_document(request)
    plan = _plan(request, doc)
    _check_members(worker, plan)
    change = await _change(request, worker, plan, packages, old)
    return web.json_response(_answer(await _submit(worker, fqmn, change, old.version)))


async def delete(request: web.Request) -> web.Response:
    worker, fqmn = worker_of(request), fqfn_of(request)
    old = _existing(worker, fqmn)
    record = await _submit(worker, fqmn, None, old.version)
    await _clean_up(worker, old)
    return web.json_response({"deleted": fqmn, "removed": record.diff.get("removed", [])})


async def _clean_up(worker: Worker, old: MeshRecord) -> None:
    """Remove the deleted members' state; their subscriptions are removed by the workers that ran them."""
    plan = _replan(old)
    for member in plan.stored if plan is not None else []:
        await _delete_state(worker, member.member.fqfn)


def _replan(record: MeshRecord) -> MeshPlan | None:
    tenant, namespace, _name = record.fqmn.split("/")
    try:
        return plan_mesh(record.document, tenant, namespace)
    except ConfigError:
        return None


def _member_summary(record: MeshRecord) -> list[dict[str, Any]]:
    return [
        {"name": m.name, "kind": m.kind, "fqfn": m.fqfn, "version": int(m.metadata.version)}
        for m in record.members
    ]


async def get(request: web.Request) -> web.Response:
    worker, fqmn = worker_of(request), fqfn_of(request)
    record = _existing(worker, fqmn)
    return web.json_response(
        {
            "name": fqmn,
            "version": record.version,
            "createTime": record.create_time,
            "document": record.document,
            "members": _member_summary(record),
            "warnings": record.warnings,
        }
    )


async def list_meshes(request: web.Request) -> web.Response:
    m = request.match_info
    for field in ("tenant", "namespace"):
        if not is_valid_name(m[field]):
            raise http_error(400, f"{field}: got {m[field]!r} in the path; {NAME_RULE}")
    return web.json_response(worker_of(request).metadata.registry.meshes(m["tenant"], m["namespace"]))


def _graph_of(record: MeshRecord) -> MeshPlan:
    plan = _replan(record)
    if plan is None:
        raise http_error(500, f"mesh {record.fqmn}: its stored document no longer validates; update it")
    return plan


async def _member_instance(worker: Worker, request: web.Request, key: str) -> dict[str, Any]:
    """An instance's status; one the leader has not placed yet is pending, not an error."""
    if worker.table.assignments.get(key) is None:
        return {
            "running": False,
            "error": "",
            "numRestarts": 0,
            "workerId": "",
            "waiting": "for the leader to place it",
        }
    return await _instance_status(worker, request, key)


async def status(request: web.Request) -> web.Response:
    worker, fqmn = worker_of(request), fqfn_of(request)
    record = _existing(worker, fqmn)
    plan = _graph_of(record)
    registry = worker.metadata.registry

    async def member_statuses(fqfn: str) -> list[dict[str, Any]]:
        md = registry.get(fqfn)
        if md is None:
            return []
        keys = _instance_keys(worker, fqfn, md)
        return list(await asyncio.gather(*(_member_instance(worker, request, k) for k in keys)))

    names = [m.name for m in plan.stored]
    results = await asyncio.gather(*(member_statuses(m.member.fqfn) for m in plan.stored))
    sampler = request.app[_SAMPLER]
    return web.json_response(
        mesh_status(fqmn, record.version, plan.stored_graph, dict(zip(names, results, strict=True)), sampler)
    )


async def graph(request: web.Request) -> web.Response:
    worker, fqmn = worker_of(request), fqfn_of(request)
    fmt = request.query.get("format", "text")
    if fmt not in FORMATS:
        raise http_error(400, f"format: got {fmt!r}; expected one of {', '.join(FORMATS)}")
    plan = _graph_of(_existing(worker, fqmn))
    content_type = {"text": "text/plain", "dot": "text/vnd.graphviz", "svg": "image/svg+xml"}[fmt]
    return web.Response(text=render(fqmn, plan.stored_graph, fmt), content_type=content_type)


def _leader_change(request: web.Request, fqmn: str, body: Any) -> tuple[MeshChange | None, int | None]:
    """A forwarded change, validated as a submission is (else a 400)."""
    expected = expected_version(body, "change")
    raw = body.get("change")
    if raw is None:
        return None, expected
    try:
        change = MeshChange.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise http_error(400, f"change: not a mesh change ({exc})")
    if change.fqmn != fqmn:
        raise http_error(400, f"change: names mesh {change.fqmn} but the path names {fqmn}")
    plan = _plan(request, change.document)
    _check_members(worker_of(request), plan)
    given = {m.name: m for m in change.members}
    if sorted(given) != sorted(m.name for m in plan.stored):
        raise http_error(400, "change: its members are not the document's")
    for member in plan.stored:
        record = given[member.name]
        if record.kind != member.kind.value or record.metadata.functionDetails != member.details:
            raise http_error(400, f"change: member {member.name} does not match the document")
        path = record.metadata.packageLocation.packagePath
        if path and not is_stored_package_path(path):
            raise http_error(
                400, f"change: member {member.name}: packageLocation {path!r}; {STORED_PACKAGE_RULE}"
            )
    return change, expected


async def leader_write(request: web.Request) -> web.Response:
    """Internal: a mesh change forwarded by another worker to the leader."""
    worker, fqmn = worker_of(request), fqfn_of(request)
    if not worker.election.is_leader:
        raise http_error(503, f"{worker.config.worker_id} is not the leader")
    change, expected = _leader_change(request, fqmn, await read_json(request, "leader"))
    try:
        record = await worker.metadata.propose_mesh(mesh_key(fqmn), change, expected, worker.duties.epoch)
    except MemberConflict as exc:
        return web.json_response({"reason": str(exc), "conflict": "member"}, status=409)
    except StaleVersion as exc:
        raise http_error(409, str(exc))
    return web.json_response({"record": orjson.loads(record.encode())})


def add_mesh_routes(app: web.Application) -> None:
    """Mount every ``/admin/v3/meshes`` route."""
    app[_SAMPLER] = MeshSampler()
    base = "/admin/v3/meshes"
    one = base + "/{tenant}/{namespace}/{name}"
    app.router.add_put(base + "/leader/{tenant}/{namespace}/{name}", leader_write)
    app.router.add_get(base + "/{tenant}/{namespace}", list_meshes)
    app.router.add_post(one, create)
    app.router.add_put(one, update)
    app.router.add_delete(one, delete)
    app.router.add_get(one, get)
    app.router.add_get(one + "/status", status)
    app.router.add_get(one + "/graph", graph)
