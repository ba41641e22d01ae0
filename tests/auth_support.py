"""Test helpers for authentication and TLS: a self-signed certificate, keys, tokens, HTTPS calls."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.security.keys import create_secret_key
from engine.security.tokens import create_token


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "magnetar-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class AuthSetup:
    """A secret key, a certificate and tokens for the roles the tests use."""

    directory: Path
    secret_key: Path
    cert: Path
    key: Path
    tokens: dict[str, str]

    def worker_config(self, path: Path, extra: dict[str, Any] | None = None) -> Path:
        """A functions_worker.yml with authentication, authorization and TLS on."""
        import yaml

        data: dict[str, Any] = {
            "authenticationEnabled": True,
            "authenticationProviders": [
                "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
            ],
            "authorizationEnabled": True,
            "superUserRoles": ["admin", "worker"],
            "properties": {"tokenSecretKey": f"file://{self.secret_key}"},
            "tlsEnabled": True,
            "tlsCertificateFilePath": str(self.cert),
            "tlsKeyFilePath": str(self.key),
            "tlsTrustCertsFilePath": str(self.cert),
            "brokerClientAuthenticationPlugin": "org.apache.pulsar.client.impl.auth.AuthenticationToken",
            "brokerClientAuthenticationParameters": f"token:{self.tokens['worker']}",
            **(extra or {}),
        }
        path.write_text(yaml.safe_dump(data))
        return path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def auth_setup(directory: Path) -> AuthSetup:
    """Keys, a certificate, and tokens: admin (superuser), worker, alice, bob, carol, and expired."""
    secret = create_secret_key()
    key_path = directory / "secret.key"
    key_path.write_bytes(secret)
    cert, key = self_signed_cert(directory)
    tokens = {role: create_token(role, secret) for role in ("admin", "worker", "alice", "bob", "carol")}
    tokens["expired"] = create_token("admin", secret, expires_in=-60)
    return AuthSetup(directory, key_path, cert, key, tokens)


def call(
    url: str,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    """``(status, decoded body)`` of one REST call; never raises for an HTTP error status."""
    data = orjson.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            raw, status, ctype = resp.read(), resp.status, resp.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        raw, status, ctype = exc.read(), exc.code, exc.headers.get_content_type()
    if ctype == "application/json" and raw:
        return status, orjson.loads(raw)
    return status, raw
