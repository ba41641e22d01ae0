"""Authentication and authorization of every REST request.

With ``authenticationEnabled`` every request needs ``Authorization: Bearer <token>``
(401 otherwise), except the health paths ``/metrics`` and ``/initialized`` unless
``authenticateMetricsEndpoint`` is set. With ``authorizationEnabled`` the role must also
be allowed what the route does (403 otherwise):

- a function or mesh route of ``tenant/namespace``: the tenant's admin, or a role granted
  ``functions`` on the namespace;
- a tenant's info and its namespaces' permissions: the tenant's admin;
- everything else (the worker and cluster routes, packages by path, the leader's internal
  route, creating and deleting tenants): a superuser, which the workers are to each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.api.errors import http_error
from engine.proto import Function_pb2 as pb
from engine.security.errors import AuthenticationError
from engine.security.service import WorkerSecurity

__all__ = ["OPEN_PATHS", "ROLE", "SUBMITTER_PROVIDER", "authenticate", "record_submitter"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Paths that answer without credentials unless ``authenticateMetricsEndpoint`` is set.
OPEN_PATHS = frozenset({"/metrics", "/initialized"})
#: The request key under which the authenticated role is kept (``None`` without authentication).
ROLE = "magnetar.role"
#: ``functionAuthSpec.provider`` of a function's metadata whose ``data`` is the submitter's role.
SUBMITTER_PROVIDER = "magnetar.submitter-role"

# Decided by the matched route's pattern, never by a path prefix, so a tenant named
# "leader" or "upload" is a tenant like any other.
_FUNCTION_ROUTES = ("/admin/v3/functions/{tenant}/{namespace}", "/admin/v3/meshes/{tenant}/{namespace}")
_NAMESPACE_ROUTES = "/admin/v2/namespaces/{tenant}/{namespace}"
_TENANT_ROUTE = "/admin/v2/tenants/{tenant}"


def _check(security: WorkerSecurity, request: web.Request, role: str) -> None:
    authz = security.authz
    if not authz.enabled:
        return
    if not security.tenants.ready:
        raise http_error(503, "the worker is still loading tenants and permissions; try again shortly")
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    info = request.match_info
    tenant = info.get("tenant", "")
    if route.startswith(_FUNCTION_ROUTES):
        namespace = info.get("namespace", "")
        if authz.can_functions(role, tenant, namespace):
            return
        raise http_error(403, f"role {role!r} is not authorized to manage functions of {tenant}/{namespace}")
    if route.startswith(_NAMESPACE_ROUTES) or (route == _TENANT_ROUTE and request.method == "GET"):
        if authz.is_tenant_admin(role, tenant):
            return
        raise http_error(403, f"role {role!r} is not an admin of tenant {tenant!r}")
    if request.path in OPEN_PATHS or authz.is_superuser(role):
        return
    raise http_error(
        403, f"role {role!r} is not authorized: {request.method} {request.path} needs a superuser role"
    )


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The middleware: sets ``request[ROLE]`` and refuses what the role may not do."""
    security: WorkerSecurity = request.app["security"]
    request[ROLE] = None
    provider = security.provider
    if provider is None:
        return await handler(request)
    if request.path in OPEN_PATHS and not security.settings.authenticate_metrics_endpoint:
        return await handler(request)
    try:
        role = provider.authenticate(request.headers)
    except AuthenticationError as exc:
        error = http_error(401, str(exc))
        error.headers["WWW-Authenticate"] = "Bearer"  # RFC 9110: a 401 names its scheme
        raise error
    request[ROLE] = role
    _check(security, request, role)
    return await handler(request)


def record_submitter(request: web.Request, md: pb.FunctionMetaData) -> None:
    """Record in ``md.functionAuthSpec`` the role that submitted it (nothing without authentication)."""
    role = request.get(ROLE)
    if role:
        md.functionAuthSpec.CopyFrom(
            pb.FunctionAuthenticationSpec(provider=SUBMITTER_PROVIDER, data=role.encode())
        )
