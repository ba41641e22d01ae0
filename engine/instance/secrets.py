"""Secrets providers behind ``Context.get_secret``.

The function config's ``secrets`` maps a secret name to a provider-specific value:

* ``ClearTextSecretsProvider`` (the default, as Apache's for localrun and the process
  runtime): the value itself;
* ``EnvironmentSecretsProvider`` (as Apache's ``EnvironmentBasedSecretsProvider``):
  the environment variable named after the secret, or the one named by the value when
  the value is ``{"env": "VAR"}``;
* ``FileSecretsProvider``: the value is a path, or ``{"path": ..., "key": ...}`` to
  read one key of a JSON or YAML file; the file's text (stripped) otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import yaml

from engine.function.loader import import_object

__all__ = [
    "ClearTextSecretsProvider",
    "EnvironmentSecretsProvider",
    "FileSecretsProvider",
    "SecretsProvider",
    "make_secrets_provider",
]


class SecretsProvider:
    """Turns a secret's configured value into the secret."""

    def provide_secret(self, secret_name: str, path_to_secret: Any) -> str | None:
        raise NotImplementedError


class EnvironmentSecretsProvider(SecretsProvider):
    """Secrets from environment variables."""

    def provide_secret(self, secret_name: str, path_to_secret: Any) -> str | None:
        if isinstance(path_to_secret, dict) and isinstance(path_to_secret.get("env"), str):
            return os.environ.get(path_to_secret["env"])
        return os.environ.get(secret_name)


class FileSecretsProvider(SecretsProvider):
    """Secrets read from files (for example mounted secret volumes)."""

    def provide_secret(self, secret_name: str, path_to_secret: Any) -> str | None:
        key = None
        path = path_to_secret
        if isinstance(path_to_secret, dict):
            path = path_to_secret.get("path")
            key = path_to_secret.get("key")
        if not isinstance(path, str) or not os.path.isfile(path):
            return None
        with open(path, "rb") as fh:
            raw = fh.read()
        if key is None:
            return raw.decode("utf-8").strip()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = yaml.safe_load(raw)
        if not isinstance(data, dict) or key not in data:
            return None
        return str(data[key])


class ClearTextSecretsProvider(SecretsProvider):
    """The configured value is the secret."""

    def provide_secret(self, secret_name: str, path_to_secret: Any) -> str | None:
        return None if path_to_secret is None else str(path_to_secret)


_ALIASES = {
    "env": EnvironmentSecretsProvider,
    "environment": EnvironmentSecretsProvider,
    "secretsprovider.EnvironmentBasedSecretsProvider": EnvironmentSecretsProvider,
    "file": FileSecretsProvider,
    "cleartext": ClearTextSecretsProvider,
    "secretsprovider.ClearTextSecretsProvider": ClearTextSecretsProvider,
}


def make_secrets_provider(class_name: str | None, config: dict[str, Any] | None = None) -> Any:
    """A provider by alias (``env``, ``file``, ``cleartext``), Apache class name, or import path.

    Without a name, clear text: the configured value is the secret, as Apache's default.
    """
    if not class_name:
        return ClearTextSecretsProvider()
    cls = _ALIASES.get(class_name) or _ALIASES.get(class_name.lower())
    if cls is None:
        cls = import_object(class_name)
    provider = cls()
    if config and hasattr(provider, "init"):
        provider.init(config)
    return provider
