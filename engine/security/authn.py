"""Authentication of REST requests: ``Authorization: Bearer <jwt>`` checked against the worker's key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.security.auth_settings import AuthSettings
from engine.security.credentials import token_from_auth_params
from engine.security.errors import SettingError
from engine.security.keys import load_public_key, read_key_url
from engine.security.tokens import AuthenticationError, TokenVerifier, create_token

__all__ = ["TokenAuthenticationProvider", "worker_token"]

#: How long a token the worker mints for itself (from a secret key) stays valid.
_SELF_TOKEN_SECONDS = 365 * 86400


class TokenAuthenticationProvider:
    """Answers the role of a request's bearer token (Pulsar's AuthenticationProviderToken)."""

    def __init__(self, settings: AuthSettings) -> None:
        key: Any
        if settings.token_secret_key:
            key = read_key_url(settings.token_secret_key, "properties.tokenSecretKey")
        elif settings.token_public_key:
            key = load_public_key(settings.token_public_key, "properties.tokenPublicKey")
        else:
            raise SettingError("properties.tokenSecretKey or properties.tokenPublicKey is required")
        self.verifier = TokenVerifier(key, settings.token_auth_claim or "sub", settings.token_audience)

    def authenticate(self, headers: Mapping[str, str]) -> str:
        """The role of the request; raises :class:`AuthenticationError` without valid credentials."""
        header = headers.get("Authorization")
        if not header:
            raise AuthenticationError("authentication required: send Authorization: Bearer <token>")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
        return self.verifier.role(token.strip())


def worker_token(settings: AuthSettings) -> str | None:
    """The token the worker presents to other workers (and the leader).

    Its ``brokerClientAuthenticationParameters`` when set (as Pulsar's worker uses them for
    its admin client too); else, with a secret key, a token it signs for its first superuser
    role; else ``None``.
    """
    token = token_from_auth_params(
        settings.broker_client_authentication_plugin,
        settings.broker_client_authentication_parameters,
        "brokerClientAuthenticationParameters",
    )
    if token or not settings.authentication_enabled:
        return token
    if settings.token_secret_key and settings.super_user_roles:
        key = read_key_url(settings.token_secret_key, "properties.tokenSecretKey")
        return create_token(sorted(settings.super_user_roles)[0], key, expires_in=_SELF_TOKEN_SECONDS)
    return None
