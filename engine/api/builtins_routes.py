"""``/admin/v3/functions/builtins`` and ``/builtins/reload``: no built-in functions are shipped yet.

(``/admin/v3/functions/connectors`` lists the built-in connectors: :mod:`engine.api.connectors_routes`.)
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["add_builtin_routes"]


async def builtins(request: web.Request) -> web.Response:
    """The built-in functions (``FunctionDefinition`` list): none are shipped yet."""
    return web.json_response([])


async def reload_builtins(request: web.Request) -> web.Response:
    """Reload the built-in functions; there are none to reload (204 as Pulsar answers)."""
    return web.Response(status=204)


def add_builtin_routes(app: web.Application) -> None:
    """Mount the built-in function routes."""
    base = "/admin/v3/functions"
    app.router.add_get(base + "/builtins", builtins)
    app.router.add_post(base + "/builtins/reload", reload_builtins)
