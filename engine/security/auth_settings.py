"""The worker's authentication, authorization and TLS settings, with Apache's names.

They come from a ``functions_worker.yml``-style file (``--config``) and from flags of
the same names; a flag given on the command line wins over the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.security.errors import SettingError

__all__ = ["TOKEN_PROVIDER", "AuthSettings", "load_worker_file"]

log = logging.getLogger(__name__)

#: Apache's class name of the JWT authentication provider (the short name is accepted too).
TOKEN_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
_PROVIDERS = {TOKEN_PROVIDER, "AuthenticationProviderToken", "token"}

#: Apache setting name -> AuthSettings attribute, with the expected type.
_FIELDS: dict[str, tuple[str, type]] = {
    "authenticationEnabled": ("authentication_enabled", bool),
    "authenticationProviders": ("authentication_providers", list),
    "authorizationEnabled": ("authorization_enabled", bool),
    "superUserRoles": ("super_user_roles", list),
    "authenticateMetricsEndpoint": ("authenticate_metrics_endpoint", bool),
    "tlsEnabled": ("tls_enabled", bool),
    "workerPortTls": ("worker_port_tls", int),
    "tlsCertificateFilePath": ("tls_certificate_file_path", str),
    "tlsKeyFilePath": ("tls_key_file_path", str),
    "tlsTrustCertsFilePath": ("tls_trust_certs_file_path", str),
    "brokerClientAuthenticationPlugin": ("broker_client_authentication_plugin", str),
    "brokerClientAuthenticationParameters": ("broker_client_authentication_parameters", str),
}
#: Keys under ``properties:``.
_PROPERTIES: dict[str, str] = {
    "tokenSecretKey": "token_secret_key",
    "tokenPublicKey": "token_public_key",
    "tokenAuthClaim": "token_auth_claim",
    "tokenAudience": "token_audience",
}


@dataclass(frozen=True)
class AuthSettings:
    """Who may call the worker's REST API, and how it serves TLS (Apache's names in the docs)."""

    #: ``authenticationEnabled``: every request but the open health paths needs a valid token.
    authentication_enabled: bool = False
    #: ``authenticationProviders``: provider class names; only the token provider exists.
    authentication_providers: tuple[str, ...] = (TOKEN_PROVIDER,)
    #: ``authorizationEnabled``: check the role's permissions (tenant admin, namespace grants).
    authorization_enabled: bool = False
    #: ``superUserRoles``: roles allowed everything.
    super_user_roles: frozenset[str] = frozenset()
    #: ``authenticateMetricsEndpoint``: also require a token on /metrics and /initialized.
    authenticate_metrics_endpoint: bool = False
    #: ``properties.tokenSecretKey``: ``file:///…`` or ``data:;base64,…`` secret key (HS*).
    token_secret_key: str | None = None
    #: ``properties.tokenPublicKey``: the public key (RS*/ES*) of the key pair that signs tokens.
    token_public_key: str | None = None
    #: ``properties.tokenAuthClaim``: the claim naming the role (default ``sub``).
    token_auth_claim: str | None = None
    #: ``properties.tokenAudience``: when set, tokens must carry it in ``aud``.
    token_audience: str | None = None
    #: ``tlsEnabled``: serve HTTPS on ``workerPortTls``.
    tls_enabled: bool = False
    worker_port_tls: int | None = None
    tls_certificate_file_path: str | None = None
    tls_key_file_path: str | None = None
    #: ``tlsTrustCertsFilePath``: CA the worker trusts when calling other workers over HTTPS.
    tls_trust_certs_file_path: str | None = None
    #: The worker's own credentials, for the broker and for calls to other workers.
    broker_client_authentication_plugin: str | None = None
    broker_client_authentication_parameters: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], source: str = "worker config", check: bool = True
    ) -> AuthSettings:
        """Settings from Apache-named keys (a parsed ``functions_worker.yml``); unknown keys are kept
        in ``extra`` and otherwise ignored, as a full Apache file holds many that do not apply."""
        if not isinstance(data, dict):
            raise SettingError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, raw in data.items():
            if key == "properties":
                if raw is None:
                    continue
                if not isinstance(raw, dict):
                    raise SettingError(f"{source}: properties: expected a mapping, got {raw!r}")
                for pkey, pval in raw.items():
                    if pkey in _PROPERTIES and pval is not None:
                        values[_PROPERTIES[pkey]] = _typed(f"properties.{pkey}", pval, str, source)
                continue
            if key not in _FIELDS:
                extra[str(key)] = raw
                _warn_if_misspelt(str(key), source)
                continue
            if raw is None:
                continue
            attr, kind = _FIELDS[key]
            values[attr] = _typed(key, raw, kind, source)
        settings = cls(**_normalized(values), extra=extra)
        # A file that flags complete (e.g. one file, a workerPortTls per worker) is checked once merged.
        return settings.checked(source) if check else settings

    def merged(self, overrides: dict[str, Any], source: str = "flags") -> AuthSettings:
        """These settings with Apache-named ``overrides`` (``None`` values ignored) applied."""
        flat = {k: v for k, v in overrides.items() if v is not None}
        props = {k: flat.pop(k) for k in list(flat) if k in _PROPERTIES}
        if props:
            flat["properties"] = props
        given = AuthSettings.from_mapping(flat, source, check=False)
        chosen = {
            f.name: getattr(given, f.name)
            for f in dataclasses.fields(self)
            if f.name != "extra" and _was_given(f.name, flat)
        }
        return dataclasses.replace(self, **chosen).checked(source)

    def checked(self, source: str) -> AuthSettings:
        """Raise SettingError for settings that cannot work together."""
        for provider in self.authentication_providers:
            if provider not in _PROVIDERS:
                raise SettingError(
                    f"{source}: authenticationProviders: got {provider!r}; expected {TOKEN_PROVIDER}"
                )
        if self.authentication_enabled and not (self.token_secret_key or self.token_public_key):
            raise SettingError(
                f"{source}: authenticationEnabled needs properties.tokenSecretKey or "
                "properties.tokenPublicKey (file:///path or data:;base64,...)"
            )
        if self.authorization_enabled and not self.authentication_enabled:
            raise SettingError(f"{source}: authorizationEnabled needs authenticationEnabled: true")
        if self.tls_enabled:
            missing = [
                name
                for name, value in (
                    ("workerPortTls", self.worker_port_tls),
                    ("tlsCertificateFilePath", self.tls_certificate_file_path),
                    ("tlsKeyFilePath", self.tls_key_file_path),
                )
                if value is None
            ]
            if missing:
                raise SettingError(f"{source}: tlsEnabled needs {', '.join(missing)}")
        if self.worker_port_tls is not None and not 0 < self.worker_port_tls < 65536:
            raise SettingError(f"{source}: workerPortTls: got {self.worker_port_tls}; expected 1..65535")
        return self


def _warn_if_misspelt(key: str, source: str) -> None:
    # A full Apache file holds many settings Magnetar has no use for; only a near miss of
    # one it does use is worth a word (a typo would silently leave security off).
    close = difflib.get_close_matches(key, [*_FIELDS, "properties"], n=1, cutoff=0.85)
    if close:
        log.warning("%s: %s is not a setting Magnetar uses; did you mean %s?", source, key, close[0])


def _was_given(attr: str, flat: dict[str, Any]) -> bool:
    for key, (name, _) in _FIELDS.items():
        if name == attr:
            return key in flat
    for key, name in _PROPERTIES.items():
        if name == attr:
            return key in flat.get("properties", {})
    return False


def _typed(key: str, value: Any, kind: type, source: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise SettingError(f"{source}: {key}: got {value!r}; expected true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise SettingError(f"{source}: {key}: got {value!r}; expected a port number")
    if kind is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise SettingError(f"{source}: {key}: got {value!r}; expected a list of names (or a comma list)")
    if isinstance(value, str):
        return value
    raise SettingError(f"{source}: {key}: got {value!r}; expected a string")


def _normalized(values: dict[str, Any]) -> dict[str, Any]:
    if "authentication_providers" in values:
        values["authentication_providers"] = tuple(values["authentication_providers"])
    if "super_user_roles" in values:
        values["super_user_roles"] = frozenset(values["super_user_roles"])
    return values


def load_worker_file(path: str) -> dict[str, Any]:
    """The mapping in a ``functions_worker.yml``-style file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise SettingError(f"--config {path}: cannot read it ({exc.strerror})")
    except yaml.YAMLError as exc:
        raise SettingError(f"--config {path}: not valid YAML ({exc})")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingError(f"--config {path}: expected a mapping of settings, got {type(data).__name__}")
    return data
