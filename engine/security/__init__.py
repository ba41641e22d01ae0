"""Security of the worker: token authentication, authorization, tenants and TLS settings."""

from engine.security.auth_settings import TOKEN_PROVIDER, AuthSettings
from engine.security.authn import TokenAuthenticationProvider, worker_token
from engine.security.authz import AuthorizationService
from engine.security.credentials import TOKEN_PLUGIN, token_from_auth_params
from engine.security.errors import SettingError
from engine.security.service import WorkerSecurity
from engine.security.tenants import AUTH_ACTIONS, TenantInfo, TenantStore
from engine.security.tokens import AuthenticationError, TokenVerifier, create_token

__all__ = [
    "AUTH_ACTIONS",
    "TOKEN_PLUGIN",
    "TOKEN_PROVIDER",
    "AuthSettings",
    "AuthenticationError",
    "AuthorizationService",
    "SettingError",
    "TenantInfo",
    "TenantStore",
    "TokenAuthenticationProvider",
    "TokenVerifier",
    "WorkerSecurity",
    "create_token",
    "token_from_auth_params",
    "worker_token",
]
