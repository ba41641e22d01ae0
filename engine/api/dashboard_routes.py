"""``/dashboard``: the page, its static files, and the JSON it polls."""

from __future__ import annotations

from aiohttp import web

from engine.api.common import fqfn_of
from engine.api.errors import http_error
from engine.dashboard import MeshGraphUnavailable, cluster_overview, local_view, mesh_graph_svg, static_file
from engine.worker.worker import Worker

__all__ = ["add_dashboard_routes"]

# The page runs only its own script and style and talks only to this worker.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _worker(request: web.Request) -> Worker:
    return request.app["worker"]


def _file(name: str) -> web.Response:
    found = static_file(name)
    if found is None:
        raise http_error(404, f"{name!r}: the dashboard has index.html, dashboard.js and dashboard.css")
    data, content_type = found
    return web.Response(body=data, content_type=content_type, charset="utf-8", headers=_HEADERS)


async def page(request: web.Request) -> web.Response:
    return _file("index.html")


async def asset(request: web.Request) -> web.Response:
    return _file(request.match_info["name"])


async def overview(request: web.Request) -> web.Response:
    """The whole cluster; the caller's ``Authorization`` goes on to the other workers."""
    auth = request.headers.get("Authorization")
    body = await cluster_overview(_worker(request), {"Authorization": auth} if auth else None)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def local(request: web.Request) -> web.Response:
    """This worker's instances (what ``overview`` gathers from each worker)."""
    return web.json_response(await local_view(_worker(request)), headers={"Cache-Control": "no-store"})


async def mesh_graph(request: web.Request) -> web.Response:
    """A mesh's pipeline as SVG (the page shows it as an image)."""
    fqmn = fqfn_of(request)
    try:
        svg = mesh_graph_svg(_worker(request), fqmn)
    except MeshGraphUnavailable as exc:
        raise http_error(500, str(exc))
    if svg is None:
        raise http_error(404, f"Mesh {fqmn} doesn't exist")
    return web.Response(text=svg, content_type="image/svg+xml", headers=_HEADERS)


def add_dashboard_routes(app: web.Application) -> None:
    """Mount the dashboard routes."""
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", page)
    app.router.add_get("/dashboard/static/{name}", asset)
    app.router.add_get("/dashboard/api/overview", overview)
    app.router.add_get("/dashboard/api/local", local)
    app.router.add_get("/dashboard/api/meshes/{tenant}/{namespace}/{name}/graph", mesh_graph)
