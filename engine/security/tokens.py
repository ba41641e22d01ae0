"""JSON Web Tokens as Pulsar uses them: the subject (``sub``) claim is the role.

Signed with a secret key (HS256/384/512) or a private key (RS*/PS*/ES*), verified with
the secret key or the matching public key. Verification accepts only the algorithms of
the key it holds, so an HMAC token cannot be checked against a public key's bytes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.security.errors import AuthenticationError, SettingError

__all__ = [
    "AuthenticationError",
    "TokenVerifier",
    "create_token",
    "decode_unverified",
    "parse_duration",
]

_HMAC = ["HS256", "HS384", "HS512"]
_RSA = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
_EC = ["ES256", "ES384", "ES512"]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdwy]?)\s*$")


def parse_duration(text: str, field: str = "--expiry-time") -> int:
    """Seconds in ``text``: a number with an optional unit s, m, h, d, w or y (``1d``, ``12h``)."""
    m = _DURATION.match(text)
    if not m:
        raise SettingError(
            f"{field}: got {text!r}; expected a number with a unit s, m, h, d, w or y (e.g. 1d)"
        )
    seconds = int(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds <= 0:
        raise SettingError(f"{field}: got {text!r}; expected a duration above zero")
    return seconds


def _algorithms_for(key: Any) -> list[str]:
    if isinstance(key, bytes):
        return _HMAC
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return _RSA
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return _EC
    raise SettingError(
        f"token key: unsupported key type {type(key).__name__}; expected a secret, RSA or EC key"
    )


def create_token(
    subject: str,
    key: Any,
    algorithm: str | None = None,
    expires_in: int | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A signed token whose subject is ``subject``.

    Parameters
    ----------
    subject
        The role the token authenticates as.
    key
        Secret key bytes, or an RSA/EC private key object.
    algorithm
        The signature algorithm (default HS256 for a secret key, RS256 or ES256 for a key pair).
    expires_in
        Seconds until the token expires (``exp`` claim); ``None`` for a token that never does.
    headers
        Extra JWT header fields.
    """
    if not subject:
        raise SettingError("--subject: a role is required")
    allowed = _algorithms_for(key)
    algorithm = algorithm or allowed[0]
    if algorithm not in allowed:
        raise SettingError(
            f"--signature-algorithm: got {algorithm!r}; this key signs with {', '.join(allowed)}"
        )
    claims: dict[str, Any] = {"sub": subject}
    if expires_in is not None:
        claims["exp"] = int(time.time()) + int(expires_in)
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(header, claims)`` of a token without checking its signature (``tokens show``)."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"not a JSON Web Token: {exc}")
    return header, claims


@dataclass(frozen=True)
class TokenVerifier:
    """Checks tokens against one key and answers their role.

    Parameters
    ----------
    key
        The secret key bytes, or an RSA/EC public key object.
    role_claim
        The claim holding the role (Pulsar's ``tokenAuthClaim``; default ``sub``).
    audience
        When set, tokens must name it in ``aud`` (Pulsar's ``tokenAudience``).
    """

    key: Any
    role_claim: str = "sub"
    audience: str | None = None

    def role(self, token: str) -> str:
        """The role ``token`` authenticates; raises :class:`AuthenticationError` otherwise."""
        if not isinstance(token, str) or not token:
            raise AuthenticationError("no token was given")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=_algorithms_for(self.key),
                audience=self.audience,
                options={"require": [self.role_claim], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired")
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the token is not valid: {exc}")
        role = claims.get(self.role_claim)
        if not isinstance(role, str) or not role:
            raise AuthenticationError(f"the token's {self.role_claim!r} claim is not a role name")
        return role
