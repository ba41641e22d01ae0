"""Safe by default: without authentication, only loopback (or configured) hosts and same-origin requests.

A browser on the worker's machine can be made to send requests to the REST API by any
web page: a cross-site form POST (its ``Origin`` is the foreign site) or DNS rebinding
(its ``Host`` is the foreign name). Without authentication either would let the page
run code, so this middleware refuses both. Once requests are authenticated
(``SecuritySettings.authentication_enabled``) a forged request carries no credentials
and the guard stands aside.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from engine.api.errors import http_error
from engine.security.settings import SecuritySettings

__all__ = ["guard_middleware", "is_loopback_host", "listen_refusal"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``*.localhost`` and loopback IP addresses."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def listen_refusal(host: str, settings: SecuritySettings) -> str | None:
    """Why the worker must not listen on ``host``, or ``None`` when it may."""
    if settings.authentication_enabled or settings.allow_unauthenticated_remote or is_loopback_host(host):
        return None
    return (
        f"--host {host}: without authentication the REST API listens on loopback only, since anyone "
        "who can reach it can run code; enable authentication, or pass --allow-unauthenticated-remote"
    )


def _hostname(netloc: str) -> str:
    try:
        return (urlsplit(f"//{netloc}").hostname or "").lower()
    except ValueError:
        return ""


class _Guard:
    def __init__(self, settings: SecuritySettings, listen_host: str) -> None:
        self.settings = settings
        self.allowed = {h.lower() for h in settings.allowed_hosts}
        self.listen_host = listen_host.lower()
        # Listening on every address by choice: any IP literal is a direct connection, which
        # DNS rebinding (a foreign name resolving to this machine) cannot produce.
        self.any_ip = self.listen_host in ("0.0.0.0", "::", "")

    def host_allowed(self, host: str) -> bool:
        if not host:
            return True
        if is_loopback_host(host) or host in self.allowed or host == self.listen_host.strip("[]"):
            return True
        return self.any_ip and _is_ip_literal(host)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.settings.authentication_enabled:
            return await handler(request)
        raw_host = request.headers.get("Host", "")
        host = _hostname(raw_host)
        if raw_host and not self.host_allowed(host):
            raise http_error(
                403,
                f"Host {raw_host!r} is not a name of this worker; without authentication only "
                "loopback names and --allowed-hosts are served",
            )
        origin = request.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin) if origin != "null" else None
            if parts is None or parts.netloc.lower() != raw_host.lower():
                raise http_error(
                    403,
                    f"Origin {origin!r} is not this worker's; without authentication cross-site "
                    "requests are refused",
                )
        return await handler(request)


def guard_middleware(
    settings: SecuritySettings, listen_host: str
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The aiohttp middleware enforcing the guard for a worker listening on ``listen_host``."""
    guard = _Guard(settings, listen_host)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await guard(request, handler)

    return middleware
