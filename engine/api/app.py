"""The worker's REST application: routes, JSON errors, and the initializing guard."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.api.errors import http_error
from engine.api.functions_routes import add_function_routes
from engine.api.worker_routes import add_worker_routes
from engine.config import ConfigError
from engine.packages.routes import add_package_routes
from engine.state.store import StateStoreError
from engine.worker.worker import Worker

__all__ = ["build_app", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    worker: Worker = request.app["worker"]
    if not worker.initialized and request.path != "/initialized":
        raise http_error(
            503, "Function worker service is not done initializing. Please try again in a little while."
        )
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type != "application/json" and exc.status >= 400:
            raise http_error(exc.status, exc.reason) from None
        raise
    except ConfigError as exc:
        raise http_error(400, str(exc)) from None
    except StateStoreError as exc:
        raise http_error(503, f"state store unavailable: {exc}") from None
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        raise http_error(500, f"{type(exc).__name__}: {exc}") from None


def build_app(worker: Worker) -> web.Application:
    """The aiohttp application serving ``worker``."""
    app = web.Application(middlewares=[_errors], client_max_size=256 * 1024 * 1024)
    app["worker"] = worker
    add_function_routes(app)
    add_worker_routes(app)
    add_package_routes(app)
    return app


async def serve(worker: Worker) -> web.AppRunner:
    """Start serving on the worker's host and port; returns the runner (``cleanup()`` stops it)."""
    runner = web.AppRunner(build_app(worker), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, worker.config.host, worker.config.port)
    await site.start()
    return runner
