"""Security of the worker: token authentication, authorization, tenants and TLS settings.

The names below load on first use (PEP 562), so a CLI verb that needs one small module
(the admin client's credentials) does not pay for the JWT, crypto and broker imports.
"""

from __future__ import annotations

import importlib
from typing import Any

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

_WHERE = {
    "AUTH_ACTIONS": "tenants",
    "TOKEN_PLUGIN": "credentials",
    "TOKEN_PROVIDER": "auth_settings",
    "AuthSettings": "auth_settings",
    "AuthenticationError": "errors",
    "AuthorizationService": "authz",
    "SettingError": "errors",
    "TenantInfo": "tenants",
    "TenantStore": "tenants",
    "TokenAuthenticationProvider": "authn",
    "TokenVerifier": "tokens",
    "WorkerSecurity": "service",
    "create_token": "tokens",
    "token_from_auth_params": "credentials",
    "worker_token": "authn",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
