"""The worker's REST application: routes, JSON errors, the Host/Origin guard and the initializing guard."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from engine.api.auth_middleware import authenticate
from engine.api.connectors_routes import add_connector_routes
from engine.api.dashboard_routes import add_dashboard_routes
from engine.api.errors import http_error
from engine.api.functions_routes import add_function_routes
from engine.api.guard import guard_middleware, listen_refusal
from engine.api.mesh_routes import add_mesh_routes
from engine.api.openapi import add_openapi_route
from engine.api.tenants_routes import add_tenant_routes
from engine.api.wire_errors import JsonErrorRunner
from engine.api.worker_routes import add_worker_routes
from engine.cluster.packages import PackageError, PackageStoreUnavailable
from engine.config import ConfigError
from engine.packages.routes import add_package_routes
from engine.security.service import WorkerSecurity, server_ssl_context
from engine.state.store import StateStoreError
from engine.worker.disk import DiskSpaceLow
from engine.worker.worker import Worker

__all__ = ["MAX_BODY_BYTES", "build_app", "security_of", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The largest request body (a function package upload); larger bodies get 413.
MAX_BODY_BYTES = 256 * 1024 * 1024


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    worker: Worker = request.app["worker"]
    if not worker.initialized and request.path not in ("/initialized", "/admin/v3/openapi.json"):
        raise http_error(
            503, "Function worker service is not done initializing. Please try again in a little while."
        )
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type != "application/json" and exc.status >= 400:
            kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            raise http_error(exc.status, exc.reason, kept or None) from None
        raise
    except ConfigError as exc:
        raise http_error(400, str(exc)) from None
    except (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError):
        raise http_error(400, "the request body is not valid UTF-8 JSON") from None
    except PackageError as exc:
        raise http_error(404, str(exc)) from None
    except PackageStoreUnavailable as exc:
        log.error("%s %s: %s", request.method, request.path, exc)
        raise http_error(503, str(exc)) from None
    except StateStoreError:
        log.exception("%s %s: state store failed", request.method, request.path)
        raise http_error(503, "state store unavailable; see the worker's log") from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.exception("%s %s failed", request.method, request.path)
            raise http_error(500, "internal error; see the worker's log") from None
        log.error("%s %s: the worker's disk is full: %s", request.method, request.path, exc)
        why = f": {exc.reason}" if isinstance(exc, DiskSpaceLow) else ""
        raise http_error(
            507,
            f"insufficient storage: no space left in the worker's data dir{why}; "
            "nothing of the upload was kept",
        ) from None
    except Exception:
        # The text of an unexpected exception stays in the log: it can reveal internals.
        log.exception("%s %s failed", request.method, request.path)
        raise http_error(500, "internal error; see the worker's log") from None


def build_app(worker: Worker) -> web.Application:
    """The aiohttp application serving ``worker``."""
    guard = guard_middleware(worker.config.security, worker.config.host)
    app = web.Application(middlewares=[_errors, guard, authenticate], client_max_size=MAX_BODY_BYTES)
    app["worker"] = worker
    app["security"] = WorkerSecurity(worker.config.auth)
    add_function_routes(app)
    add_connector_routes(app)
    add_mesh_routes(app)
    add_worker_routes(app)
    add_tenant_routes(app)
    add_openapi_route(app)
    add_dashboard_routes(app)
    add_package_routes(app)
    return app


async def serve(worker: Worker) -> web.AppRunner:
    """Start serving on the worker's host and port, and with ``tlsEnabled`` HTTPS on
    ``workerPortTls``; returns the runner (``cleanup()`` stops it).

    Raises
    ------
    ValueError
        When the worker may not listen on its host (see :func:`engine.api.guard.listen_refusal`).
    """
    refusal = listen_refusal(worker.config.host, worker.config.security)
    if refusal is not None:
        raise ValueError(refusal)
    settings = worker.config.auth
    ssl_context = server_ssl_context(settings) if settings.tls_enabled else None
    runner = JsonErrorRunner(build_app(worker), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, worker.config.host, worker.config.port)
    await site.start()
    if ssl_context is not None:
        tls = web.TCPSite(runner, worker.config.host, settings.worker_port_tls, ssl_context=ssl_context)
        await tls.start()
    return runner


def security_of(runner: web.AppRunner) -> WorkerSecurity:
    """The security services of a served app (started once the worker has its broker client)."""
    security: WorkerSecurity = runner.app["security"]
    return security
