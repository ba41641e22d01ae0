"""Helpers shared by the function route modules."""

from __future__ import annotations

from aiohttp import web

from engine.api.errors import http_error
from engine.proto import Function_pb2 as pb
from engine.security.names import NAME_RULE, is_valid_name
from engine.worker.worker import Worker

__all__ = ["existing", "fqfn_of", "worker_of"]


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
