"""Client credentials as Pulsar's ``AuthenticationToken`` plugin takes them.

``authParams`` is ``token:<jwt>``, ``file:///path/to/token`` or ``{"token": "<jwt>"}``
(a bare token is accepted too); the plugin is
``org.apache.pulsar.client.impl.auth.AuthenticationToken`` or its short name.
"""

from __future__ import annotations

import json
from urllib.parse import unquote, urlparse

from engine.security.errors import SettingError

__all__ = ["TOKEN_PLUGIN", "token_from_auth_params"]

TOKEN_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
_PLUGINS = {TOKEN_PLUGIN, "AuthenticationToken", "token"}


def token_from_auth_params(
    plugin: str | None, params: str | None, field: str = "--auth-params"
) -> str | None:
    """The bearer token ``params`` names, or ``None`` without credentials.

    Raises
    ------
    SettingError
        For another plugin, an unreadable token file or malformed JSON parameters.
    """
    if not params:
        return None
    if plugin and plugin not in _PLUGINS:
        raise SettingError(f"--auth-plugin: got {plugin!r}; only {TOKEN_PLUGIN} is supported")
    params = params.strip()
    if params.startswith("token:"):
        token = params[len("token:") :]
    elif params.startswith("file:"):
        path = unquote(urlparse(params).path) if params.startswith("file://") else params[len("file:") :]
        try:
            with open(path, encoding="utf-8") as fh:
                token = fh.read()
        except OSError as exc:
            raise SettingError(f"{field}: {params!r}: cannot read the token file ({exc.strerror})")
    elif params.startswith("{"):
        try:
            data = json.loads(params)
        except json.JSONDecodeError as exc:
            raise SettingError(f'{field}: not valid JSON ({exc.msg}); expected {{"token": "..."}}')
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise SettingError(f'{field}: expected {{"token": "..."}}, token:<jwt> or file:///path')
        token = data["token"]
    else:
        token = params
    token = token.strip()
    if not token:
        raise SettingError(f"{field}: the token is empty")
    return token
