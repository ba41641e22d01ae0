"""The worker's security services in one object: authentication, authorization, tenants, TLS."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pulsar

from engine.security.auth_settings import AuthSettings
from engine.security.authn import TokenAuthenticationProvider, worker_token
from engine.security.authz import AuthorizationService
from engine.security.errors import SettingError
from engine.security.tenants import TenantStore

__all__ = ["WorkerSecurity", "client_ssl_context", "internal_http_options", "server_ssl_context"]

log = logging.getLogger(__name__)


def server_ssl_context(settings: AuthSettings) -> ssl.SSLContext:
    """The HTTPS context from ``tlsCertificateFilePath`` / ``tlsKeyFilePath``."""
    assert settings.tls_certificate_file_path and settings.tls_key_file_path
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(settings.tls_certificate_file_path, settings.tls_key_file_path)
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(
            f"tlsCertificateFilePath/tlsKeyFilePath: cannot load {settings.tls_certificate_file_path} "
            f"with {settings.tls_key_file_path} ({exc}); expected a PEM certificate and its PEM key"
        )
    return ctx


def client_ssl_context(trust_path: str | None, allow_insecure: bool = False) -> ssl.SSLContext:
    """A client context trusting ``trust_path`` (PEM CA bundle) or the system CAs."""
    try:
        ctx = ssl.create_default_context(cafile=trust_path)
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(f"tls trust certificate {trust_path!r}: cannot load it ({exc})")
    if allow_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def internal_http_options(settings: AuthSettings) -> dict[str, Any]:
    """``aiohttp.ClientSession`` options for calls to other workers: the worker's token, and the
    CA of ``tlsTrustCertsFilePath`` for their HTTPS port."""
    import aiohttp

    out: dict[str, Any] = {}
    token = worker_token(settings)
    if token:
        out["headers"] = {"Authorization": f"Bearer {token}"}
    elif settings.authentication_enabled:
        log.warning(
            "authentication is on but the worker has no credentials of its own "
            "(brokerClientAuthenticationParameters, or a tokenSecretKey with superUserRoles): "
            "calls forwarded to other workers will be refused"
        )
    if settings.tls_enabled:
        out["connector"] = aiohttp.TCPConnector(ssl=client_ssl_context(settings.tls_trust_certs_file_path))
    return out


class WorkerSecurity:
    """What the REST middleware and the tenant routes consult."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.provider = TokenAuthenticationProvider(settings) if settings.authentication_enabled else None
        self.tenants = TenantStore()
        self.authz = AuthorizationService(settings, self.tenants)

    async def start(self, client: pulsar.Client, namespace: str) -> None:
        """Load and follow the cluster's tenant and permission records."""
        await self.tenants.start(client, namespace)

    async def stop(self) -> None:
        await self.tenants.stop()
