"""SSL contexts: the worker's HTTPS server and the clients that call it."""

from __future__ import annotations

import ssl

from engine.security.errors import SettingError

__all__ = ["client_ssl_context", "server_ssl_context"]


def server_ssl_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The HTTPS context from ``tlsCertificateFilePath`` / ``tlsKeyFilePath``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(
            f"tlsCertificateFilePath/tlsKeyFilePath: cannot load {cert_path} with {key_path} ({exc}); "
            "expected a PEM certificate and its PEM key"
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
