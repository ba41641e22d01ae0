"""The admin verbs' HTTP client: the worker's URL, the token and TLS trust, from flags or client.conf.

Global options are ``pulsar-admin``'s and may come before or after the verb:
``--admin-url``, ``--auth-plugin``, ``--auth-params``, ``--tls-trust-cert-path``,
``--tls-allow-insecure`` and ``--client-conf`` (else ``$MAGNETAR_CLIENT_CONF``), a
``client.conf`` with ``webServiceUrl``, ``authPlugin``, ``authParams``,
``tlsTrustCertsFilePath`` and ``tlsAllowInsecureConnection``. A flag wins over
``$MAGNETAR_ADMIN_URL``, which wins over client.conf.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from engine.security.credentials import token_from_auth_params
from engine.security.errors import SettingError
from engine.security.tls import client_ssl_context

__all__ = [
    "DEFAULT_ADMIN_URL",
    "AdminError",
    "AdminTarget",
    "add_global_flags",
    "admin_command",
    "call",
    "raise_for_status",
    "read_client_conf",
    "target",
]

DEFAULT_ADMIN_URL = "http://127.0.0.1:6750"


class AdminError(Exception):
    """The worker rejected the request, or could not be reached; the message says which."""


def admin_command(
    run: Callable[[argparse.Namespace], Any], show: Callable[[Any], None] | None = None
) -> Callable[[argparse.Namespace], int]:
    """A CLI verb: ``run`` it (``show`` prints its result); an :class:`AdminError` prints one line, exit 1."""

    def handle(args: argparse.Namespace) -> int:
        try:
            result = run(args)
        except AdminError as exc:
            print(f"magnetar: {exc}", file=sys.stderr)
            return 1
        if show is not None:
            show(result)
        return 0

    return handle


def add_global_flags(p: argparse.ArgumentParser) -> None:
    """The global admin options; on every parser level, with no default so a later one wins."""
    s = argparse.SUPPRESS
    p.add_argument(
        "--admin-url", dest="admin_url", default=s, help=f"a worker's REST URL (default {DEFAULT_ADMIN_URL})"
    )
    p.add_argument(
        "--auth-plugin",
        dest="auth_plugin",
        default=s,
        help="org.apache.pulsar.client.impl.auth.AuthenticationToken",
    )
    p.add_argument(
        "--auth-params", dest="auth_params", default=s, help="token:<jwt> or file:///path/to/token"
    )
    p.add_argument(
        "--tls-trust-cert-path", dest="tls_trust_cert_path", default=s, help="CA (PEM) to trust for https"
    )
    p.add_argument(
        "--tls-allow-insecure",
        dest="tls_allow_insecure",
        action="store_true",
        default=s,
        help="accept any server certificate (testing only)",
    )
    p.add_argument(
        "--client-conf", dest="client_conf", default=s, help="client.conf (default $MAGNETAR_CLIENT_CONF)"
    )


def read_client_conf(path: str) -> dict[str, str]:
    """The ``key=value`` (or ``key: value``) settings of a Java-properties client.conf."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise SettingError(f"--client-conf {path}: cannot read it ({exc.strerror})")
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            continue
        out[line[:cut].strip()] = line[cut + 1 :].strip()
    return out


@dataclass(frozen=True)
class AdminTarget:
    """Where and how the admin verbs call."""

    url: str
    token: str | None
    ssl: ssl.SSLContext | None


def target(args: argparse.Namespace) -> AdminTarget:
    """The target from the flags, the environment and client.conf."""
    conf_path = getattr(args, "client_conf", None) or os.environ.get("MAGNETAR_CLIENT_CONF")
    conf = read_client_conf(conf_path) if conf_path else {}
    url = (
        getattr(args, "admin_url", None)
        or os.environ.get("MAGNETAR_ADMIN_URL")
        or conf.get("webServiceUrl")
        or DEFAULT_ADMIN_URL
    ).rstrip("/")
    plugin = getattr(args, "auth_plugin", None) or conf.get("authPlugin") or None
    params = getattr(args, "auth_params", None) or conf.get("authParams") or None
    token = token_from_auth_params(plugin, params)
    trust = getattr(args, "tls_trust_cert_path", None) or conf.get("tlsTrustCertsFilePath") or None
    insecure = bool(getattr(args, "tls_allow_insecure", False)) or (
        conf.get("tlsAllowInsecureConnection", "false").lower() == "true"
    )
    context = client_ssl_context(trust, insecure) if url.startswith("https://") else None
    return AdminTarget(url, token, context)


def raise_for_status(status: int, body: bytes) -> None:
    """Raise :class:`AdminError` with the worker's ``reason`` for a 4xx/5xx answer."""
    if status < 400:
        return
    try:
        reason = orjson.loads(body).get("reason", body.decode())
    except (orjson.JSONDecodeError, AttributeError):
        reason = body.decode(errors="replace")
    raise AdminError(f"{status}: {reason}")


async def _call(args: argparse.Namespace, method: str, path: str, **kw: Any) -> Any:
    where = target(args)
    headers = dict(kw.pop("headers", {}) or {})
    if where.token:
        headers["Authorization"] = f"Bearer {where.token}"
    timeout = aiohttp.ClientTimeout(total=getattr(args, "timeout", 60.0))
    connector = aiohttp.TCPConnector(ssl=where.ssl) if where.ssl is not None else None
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        try:
            async with session.request(method, where.url + path, headers=headers, **kw) as resp:
                body = await resp.read()
                raise_for_status(resp.status, body)
                if resp.content_type == "application/json":
                    return orjson.loads(body) if body else None
                return body
        except aiohttp.ClientConnectorCertificateError as exc:
            raise AdminError(
                f"cannot verify {where.url}'s certificate ({exc.certificate_error}); "
                "give --tls-trust-cert-path (or tlsTrustCertsFilePath in client.conf)"
            )
        except aiohttp.ClientConnectionError as exc:
            raise AdminError(f"cannot reach {where.url}: {exc}")


def call(args: argparse.Namespace, method: str, path: str, **kw: Any) -> Any:
    """One REST call to the admin target, synchronously; raises AdminError on a 4xx/5xx."""
    return asyncio.run(_call(args, method, path, **kw))
