"""Security of the worker: authentication, authorization, tenants, TLS settings, and safe defaults.

Safe defaults: names, limits and the reserved functions namespace. The names below load
on first use (PEP 562), so a CLI verb that needs one small module (the admin client's
credentials) does not pay for the JWT, crypto and broker imports.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AUTH_ACTIONS",
    "NAME_RULE",
    "TOKEN_PLUGIN",
    "TOKEN_PROVIDER",
    "AuthSettings",
    "AuthenticationError",
    "AuthorizationService",
    "ReservedTopic",
    "SecuritySettings",
    "SettingError",
    "TenantInfo",
    "TenantStore",
    "TokenAuthenticationProvider",
    "TokenVerifier",
    "WorkerSecurity",
    "check_name",
    "check_not_reserved",
    "check_submission",
    "create_token",
    "is_reserved_topic",
    "is_valid_name",
    "reserve_namespace",
    "reserved_namespaces",
    "token_from_auth_params",
    "worker_token",
]

_WHERE = {
    "AUTH_ACTIONS": "tenants",
    "NAME_RULE": "names",
    "TOKEN_PLUGIN": "credentials",
    "TOKEN_PROVIDER": "auth_settings",
    "AuthSettings": "auth_settings",
    "AuthenticationError": "errors",
    "AuthorizationService": "authz",
    "ReservedTopic": "reserved",
    "SecuritySettings": "settings",
    "SettingError": "errors",
    "TenantInfo": "tenants",
    "TenantStore": "tenants",
    "TokenAuthenticationProvider": "authn",
    "TokenVerifier": "tokens",
    "WorkerSecurity": "service",
    "check_name": "names",
    "check_not_reserved": "reserved",
    "check_submission": "limits",
    "create_token": "tokens",
    "is_reserved_topic": "reserved",
    "is_valid_name": "names",
    "reserve_namespace": "reserved",
    "reserved_namespaces": "reserved",
    "token_from_auth_params": "credentials",
    "worker_token": "authn",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
