"""The worker's authentication, authorization and TLS flags, with Apache's setting names.

``--config FILE`` reads a ``functions_worker.yml``-style file; each flag below, named as
the setting it sets, wins over the file.
"""

from __future__ import annotations

import argparse

from engine.security.auth_settings import AuthSettings, load_worker_file

__all__ = ["add_auth_flags", "auth_settings"]

#: (setting, metavar, help); booleans take an optional true/false.
_BOOL = (
    ("authenticationEnabled", "require a valid token on every REST call"),
    ("authorizationEnabled", "check the role's permissions (tenant admins, namespace grants)"),
    ("authenticateMetricsEndpoint", "require a token on /metrics and /initialized too"),
    ("tlsEnabled", "serve HTTPS on --workerPortTls"),
)
_VALUE = (
    ("authenticationProviders", "CLASS[,CLASS]", "authentication providers (the token provider)"),
    ("superUserRoles", "ROLE[,ROLE]", "roles allowed everything"),
    ("tokenSecretKey", "URL", "properties.tokenSecretKey: file:///path or data:;base64,KEY"),
    ("tokenPublicKey", "URL", "properties.tokenPublicKey: file:///path or data:;base64,KEY"),
    ("tokenAuthClaim", "CLAIM", "properties.tokenAuthClaim: the claim naming the role (default sub)"),
    ("workerPortTls", "PORT", "HTTPS port"),
    ("tlsCertificateFilePath", "PEM", "the worker's certificate"),
    ("tlsKeyFilePath", "PEM", "the certificate's private key"),
    ("tlsTrustCertsFilePath", "PEM", "CA trusted for HTTPS calls to other workers"),
    ("brokerClientAuthenticationPlugin", "CLASS", "the worker's own authentication plugin"),
    (
        "brokerClientAuthenticationParameters",
        "PARAMS",
        "the worker's own credentials (token:... or file:///...)",
    ),
)


def add_auth_flags(p: argparse.ArgumentParser) -> None:
    """``--config`` and the Apache-named security flags."""
    g = p.add_argument_group("security (Apache functions_worker.yml names)")
    g.add_argument(
        "--config", dest="worker_config_file", metavar="FILE", help="functions_worker.yml-style file"
    )
    for name, helptext in _BOOL:
        g.add_argument(
            f"--{name}", dest=f"auth_{name}", nargs="?", const="true", metavar="true|false", help=helptext
        )
    for name, metavar, helptext in _VALUE:
        g.add_argument(f"--{name}", dest=f"auth_{name}", metavar=metavar, help=helptext)


def auth_settings(args: argparse.Namespace) -> AuthSettings:
    """The settings from ``--config`` with the flags applied; raises SettingError naming the field."""
    path = getattr(args, "worker_config_file", None)
    base = (
        AuthSettings.from_mapping(load_worker_file(path), f"--config {path}", check=False)
        if path
        else AuthSettings()
    )
    names = [n for n, _ in _BOOL] + [n for n, _, _ in _VALUE]
    flags = {name: getattr(args, f"auth_{name}", None) for name in names}
    return base.merged(flags, f"--config {path} and flags" if path else "flags")
