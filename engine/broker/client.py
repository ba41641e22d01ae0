"""Create ``pulsar.Client`` objects from Magnetar's broker options."""

from __future__ import annotations

from dataclasses import dataclass

import pulsar

__all__ = ["BrokerOptions", "make_client"]


@dataclass
class BrokerOptions:
    """How to reach the broker: URL, authentication and TLS."""

    url: str
    auth_plugin: str | None = None
    auth_params: str | None = None
    use_tls: bool = False
    tls_allow_insecure: bool = False
    tls_trust_cert_path: str | None = None
    tls_hostname_verification: bool = False


def _authentication(opts: BrokerOptions) -> pulsar.Authentication | None:
    if not opts.auth_plugin and not opts.auth_params:
        return None
    plugin = opts.auth_plugin or ""
    params = opts.auth_params or ""
    if not plugin or plugin.lower().endswith("authenticationtoken") or plugin.lower() == "token":
        token = params[len("token:") :] if params.startswith("token:") else params
        if token.startswith("file:"):
            with open(token[len("file:") :].removeprefix("//")) as fh:
                token = fh.read().strip()
        return pulsar.AuthenticationToken(token)
    return pulsar.Authentication(plugin, params)


def make_client(opts: BrokerOptions, io_threads: int = 1) -> pulsar.Client:
    """A client for ``opts``; client logging goes to the console at WARN and above."""
    if not opts.url.startswith(("pulsar://", "pulsar+ssl://")):
        raise ValueError(f"--broker-url {opts.url!r}: expected pulsar://host:port or pulsar+ssl://host:port")
    return pulsar.Client(
        opts.url,
        authentication=_authentication(opts),
        operation_timeout_seconds=30,
        io_threads=io_threads,
        message_listener_threads=1,
        use_tls=opts.use_tls or opts.url.startswith("pulsar+ssl://"),
        tls_trust_certs_file_path=opts.tls_trust_cert_path,
        tls_allow_insecure_connection=opts.tls_allow_insecure,
        tls_validate_hostname=opts.tls_hostname_verification,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
    )
