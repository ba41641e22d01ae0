"""The worker's security services in one object: authentication, authorization, tenants, TLS."""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any

import pulsar

from engine.security.auth_settings import AuthSettings
from engine.security.authz import AuthorizationService
from engine.security.tenants import TenantStore
from engine.security.tls import client_ssl_context
from engine.security.tls import server_ssl_context as _server_context

if TYPE_CHECKING:
    from engine.security.authn import TokenAuthenticationProvider

__all__ = ["WorkerSecurity", "client_ssl_context", "internal_http_options", "server_ssl_context"]

log = logging.getLogger(__name__)


def server_ssl_context(settings: AuthSettings) -> ssl.SSLContext:
    """The HTTPS context of ``settings`` (``tlsCertificateFilePath`` / ``tlsKeyFilePath``)."""
    assert settings.tls_certificate_file_path and settings.tls_key_file_path
    return _server_context(settings.tls_certificate_file_path, settings.tls_key_file_path)


def internal_http_options(settings: AuthSettings) -> dict[str, Any]:
    """``aiohttp.ClientSession`` options for calls to other workers: the worker's token, and the
    CA of ``tlsTrustCertsFilePath`` for their HTTPS port."""
    import aiohttp

    from engine.security.authn import worker_token  # PyJWT and cryptography load only when used

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
        self.provider: TokenAuthenticationProvider | None = None
        if settings.authentication_enabled:
            from engine.security.authn import TokenAuthenticationProvider

            self.provider = TokenAuthenticationProvider(settings)
        self.tenants = TenantStore()
        self.authz = AuthorizationService(settings, self.tenants)

    async def start(self, client: pulsar.Client, namespace: str) -> None:
        """Load and follow the cluster's tenant and permission records."""
        await self.tenants.start(client, namespace)

    async def stop(self) -> None:
        await self.tenants.stop()
