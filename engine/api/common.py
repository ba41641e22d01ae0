"""Helpers shared by the function route modules."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.api.errors import http_error
from engine.proto import Function_pb2 as pb
from engine.security.names import NAME_RULE, is_valid_name
from engine.worker.worker import Worker

__all__ = ["existing", "expected_version", "fqfn_of", "worker_of"]


def worker_of(request: web.Request) -> Worker:
    """The worker serving ``request``."""
    return request.app["worker"]


def fqfn_of(request: web.Request) -> str:
    """``tenant/namespace/name`` of the path, each part checked against Pulsar's name rule (else 400)."""
    m = request.match_info
    for field in ("tenant", "namespace", "name"):
        value = m[field]
        if not is_valid_name(value):
            raise http_error(400, f"{field}: got {value!r} in the path; {NAME_RULE}")
    return f"{m['tenant']}/{m['namespace']}/{m['name']}"


def existing(worker: Worker, fqfn: str) -> pb.FunctionMetaData:
    """The metadata of ``fqfn``, or a 404."""
    md = worker.metadata.registry.get(fqfn)
    if md is None:
        raise http_error(404, f"Function {fqfn} doesn't exist")
    return md


def expected_version(body: Any, field: str) -> int | None:
    """The ``expectedVersion`` of a change forwarded to the leader (``body`` must also hold ``field``)."""
    if not isinstance(body, dict):
        raise http_error(400, f"expected a JSON object with {field} and expectedVersion")
    expected = body.get("expectedVersion")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        raise http_error(400, f"expectedVersion: got {expected!r}; expected an integer or null")
    return expected
