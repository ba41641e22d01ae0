"""Token signing keys: reading ``file:///…`` / ``data:;base64,…`` URLs and making new keys.

Key files are written as Pulsar's tools write them: a secret key as raw bytes (or
base64 text), a key pair as DER (PKCS#8 private key, X.509 SubjectPublicKeyInfo public
key). Reading accepts DER or PEM.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from typing import Any
from urllib.parse import unquote, urlparse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.security.errors import SettingError

__all__ = [
    "KEY_PAIR_ALGORITHMS",
    "SECRET_KEY_ALGORITHMS",
    "create_key_pair",
    "create_secret_key",
    "load_private_key",
    "load_public_key",
    "read_key_url",
    "write_private_file",
]

SECRET_KEY_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
KEY_PAIR_ALGORITHMS = {
    "RS256": ("rsa", 2048),
    "RS384": ("rsa", 3072),
    "RS512": ("rsa", 4096),
    "ES256": ("ec", ec.SECP256R1()),
    "ES384": ("ec", ec.SECP384R1()),
    "ES512": ("ec", ec.SECP521R1()),
}


def read_key_url(value: str, field: str) -> bytes:
    """The bytes a key setting names: ``file:///path``, ``data:[type];base64,…``, or a path.

    Raises
    ------
    SettingError
        Naming ``field`` when the value is none of those or the file cannot be read.
    """
    if value.startswith("data:"):
        head, sep, payload = value.partition(",")
        if not sep:
            raise SettingError(f"{field}: {value[:40]!r}: a data: URL needs a ',' before its payload")
        if head.endswith(";base64"):
            try:
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise SettingError(f"{field}: the data: URL's payload is not valid base64")
        return unquote(payload).encode()
    if value.startswith("file:"):
        path = unquote(urlparse(value).path) if value.startswith("file://") else value[len("file:") :]
    else:
        path = value
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise SettingError(
            f"{field}: {value!r}: cannot read the key ({exc.strerror}); "
            "expected file:///path/to/key, data:;base64,<key> or a readable path"
        )


def _load(data: bytes, field: str, private: bool) -> Any:
    pem = data.lstrip().startswith(b"-----BEGIN")
    try:
        if private:
            if pem:
                return serialization.load_pem_private_key(data, password=None)
            return serialization.load_der_private_key(data, password=None)
        if pem:
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise SettingError(f"{field}: not a {kind} RSA or EC key in DER or PEM form ({exc})")


def load_private_key(value: str, field: str = "--private-key") -> Any:
    """An RSA or EC private key object from a key URL."""
    return _load(read_key_url(value, field), field, private=True)


def load_public_key(value: str, field: str = "tokenPublicKey") -> Any:
    """An RSA or EC public key object from a key URL."""
    return _load(read_key_url(value, field), field, private=False)


def create_secret_key(algorithm: str = "HS256") -> bytes:
    """Fresh random bytes for an HMAC algorithm (as long as its hash)."""
    if algorithm not in SECRET_KEY_ALGORITHMS:
        raise SettingError(
            f"--signature-algorithm: got {algorithm!r}; expected one of {', '.join(SECRET_KEY_ALGORITHMS)}"
        )
    return secrets.token_bytes(SECRET_KEY_ALGORITHMS[algorithm])


def create_key_pair(algorithm: str = "RS256") -> tuple[bytes, bytes]:
    """A new ``(private DER, public DER)`` pair for an RSA or EC algorithm."""
    if algorithm not in KEY_PAIR_ALGORITHMS:
        raise SettingError(
            f"--signature-algorithm: got {algorithm!r}; expected one of {', '.join(KEY_PAIR_ALGORITHMS)}"
        )
    kind, param = KEY_PAIR_ALGORITHMS[algorithm]
    key: Any
    if kind == "rsa":
        assert isinstance(param, int)
        key = rsa.generate_private_key(public_exponent=65537, key_size=param)
    else:
        assert isinstance(param, ec.EllipticCurve)
        key = ec.generate_private_key(param)
    private = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def write_private_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (keys and tokens are secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
