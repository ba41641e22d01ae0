"""``/admin/v2/tenants`` and ``/admin/v2/namespaces/{tenant}/{namespace}/permissions``.

Tenants carry the admin roles who manage their functions; a namespace's permissions grant
roles actions (``functions`` is the one the worker checks). Who may call what is the
authentication middleware's job (:mod:`engine.api.auth_middleware`).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from engine.api.errors import http_error
from engine.security.service import WorkerSecurity
from engine.security.tenants import AUTH_ACTIONS, TenantInfo

__all__ = ["add_tenant_routes"]

_NAME = re.compile(r"^[-=:.\w]+$", re.ASCII)


def _security(request: web.Request) -> WorkerSecurity:
    security: WorkerSecurity = request.app["security"]
    if not security.tenants.ready:
        raise http_error(503, "the worker is still loading tenants; try again shortly")
    return security


def _name(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if not _NAME.match(value) or value in (".", ".."):
        raise http_error(400, f"{key}: got {value!r}; expected letters, digits, '_', '-', '=', ':' or '.'")
    return value


async def _json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise http_error(400, f"body: not valid JSON ({exc})")


def _roles(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise http_error(400, f"{field}: got {value!r}; expected a list of non-empty names")
    return sorted(set(value))


async def _tenant_info(request: web.Request) -> TenantInfo:
    body = await _json(request)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise http_error(
            400, f'body: got {body!r}; expected {{"adminRoles": [...], "allowedClusters": [...]}}'
        )
    unknown = sorted(set(body) - {"adminRoles", "allowedClusters"})
    if unknown:
        raise http_error(400, f"{unknown[0]}: not a tenant field; expected adminRoles or allowedClusters")
    return TenantInfo(
        _roles(body.get("adminRoles"), "adminRoles"), _roles(body.get("allowedClusters"), "allowedClusters")
    )


async def list_tenants(request: web.Request) -> web.Response:
    return web.json_response(sorted(_security(request).tenants.tenants))


async def get_tenant(request: web.Request) -> web.Response:
    tenant = _name(request, "tenant")
    info = _security(request).tenants.tenants.get(tenant)
    if info is None:
        raise http_error(404, f"Tenant {tenant} does not exist")
    return web.json_response(info.to_json())


async def create_tenant(request: web.Request) -> web.Response:
    security, tenant = _security(request), _name(request, "tenant")
    info = await _tenant_info(request)
    if tenant in security.tenants.tenants:
        raise http_error(409, f"Tenant {tenant} already exists")
    await security.tenants.put_tenant(tenant, info)
    return web.Response(status=204)


async def update_tenant(request: web.Request) -> web.Response:
    security, tenant = _security(request), _name(request, "tenant")
    info = await _tenant_info(request)
    if tenant not in security.tenants.tenants:
        raise http_error(404, f"Tenant {tenant} does not exist")
    await security.tenants.put_tenant(tenant, info)
    return web.Response(status=204)


async def delete_tenant(request: web.Request) -> web.Response:
    security, tenant = _security(request), _name(request, "tenant")
    if tenant not in security.tenants.tenants:
        raise http_error(404, f"Tenant {tenant} does not exist")
    await security.tenants.delete_tenant(tenant)
    return web.Response(status=204)


def _namespace(request: web.Request) -> str:
    return f"{_name(request, 'tenant')}/{_name(request, 'namespace')}"


async def get_permissions(request: web.Request) -> web.Response:
    return web.json_response(_security(request).tenants.grants(_namespace(request)))


async def grant_permission(request: web.Request) -> web.Response:
    security, namespace = _security(request), _namespace(request)
    role = request.match_info["role"]
    if not role.strip():
        raise http_error(400, "role: a role name is required")
    actions = await _json(request)
    if isinstance(actions, dict):
        actions = actions.get("actions")
    if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
        raise http_error(400, f'body: got {actions!r}; expected a JSON list of actions, e.g. ["functions"]')
    bad = sorted(set(actions) - AUTH_ACTIONS)
    if bad:
        raise http_error(400, f"actions: got {bad[0]!r}; expected any of {', '.join(sorted(AUTH_ACTIONS))}")
    await security.tenants.grant(namespace, role, set(actions))
    return web.Response(status=204)


async def revoke_permission(request: web.Request) -> web.Response:
    security, namespace = _security(request), _namespace(request)
    await security.tenants.revoke(namespace, request.match_info["role"])
    return web.Response(status=204)


def add_tenant_routes(app: web.Application) -> None:
    """Mount the tenant and namespace-permission routes."""
    app.router.add_get("/admin/v2/tenants", list_tenants)
    tenant = "/admin/v2/tenants/{tenant}"
    app.router.add_get(tenant, get_tenant)
    app.router.add_put(tenant, create_tenant)
    app.router.add_post(tenant, update_tenant)
    app.router.add_delete(tenant, delete_tenant)
    perms = "/admin/v2/namespaces/{tenant}/{namespace}/permissions"
    app.router.add_get(perms, get_permissions)
    app.router.add_post(perms + "/{role}", grant_permission)
    app.router.add_delete(perms + "/{role}", revoke_permission)
