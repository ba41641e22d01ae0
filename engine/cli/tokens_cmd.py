"""``magnetar tokens``: the verbs of ``pulsar tokens`` (keys, tokens, show, validate)."""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

import orjson

from engine.security.errors import SettingError

# The key and token modules (PyJWT, cryptography) load in the handlers, not with the CLI.
__all__ = ["add_tokens_parser"]


def _secret_key(args: argparse.Namespace) -> None:
    from engine.security.keys import create_secret_key, write_private_file

    key = create_secret_key(args.algorithm)
    data = base64.b64encode(key) if args.base64 else key
    if args.output:
        write_private_file(args.output, data)
    else:
        sys.stdout.buffer.write(data + (b"\n" if args.base64 else b""))
        sys.stdout.flush()


def _key_pair(args: argparse.Namespace) -> None:
    from engine.security.keys import create_key_pair, write_private_file

    private, public = create_key_pair(args.algorithm)
    write_private_file(args.output_private_key, private)
    with open(args.output_public_key, "wb") as fh:
        fh.write(public)


def _headers(values: list[str] | None) -> dict[str, Any] | None:
    if not values:
        return None
    out: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SettingError(f"--headers: got {item!r}; expected NAME=VALUE")
        out[name] = value
    return out


def _create(args: argparse.Namespace) -> None:
    from engine.security.keys import load_private_key, read_key_url
    from engine.security.tokens import create_token, parse_duration

    if bool(args.secret_key) == bool(args.private_key):
        raise SettingError(
            "give exactly one of --secret-key and --private-key (file:///path or data:;base64,...)"
        )
    key: Any = (
        read_key_url(args.secret_key, "--secret-key")
        if args.secret_key
        else load_private_key(args.private_key, "--private-key")
    )
    expires = parse_duration(args.expiry_time) if args.expiry_time else None
    print(create_token(args.subject, key, args.algorithm, expires, _headers(args.headers)))


def _token_of(args: argparse.Namespace) -> str:
    if args.stdin:
        return sys.stdin.read().strip()
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise SettingError(f"--token-file {args.token_file}: cannot read it ({exc.strerror})")
    if not args.token:
        raise SettingError("give the token, --token-file FILE or --stdin")
    return str(args.token).strip()


def _show(args: argparse.Namespace) -> int:
    from engine.security.tokens import AuthenticationError, decode_unverified

    try:
        header, claims = decode_unverified(_token_of(args))
    except AuthenticationError as exc:
        print(f"magnetar: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(header).decode())
    print("---")
    print(orjson.dumps(claims).decode())
    return 0


def _validate(args: argparse.Namespace) -> int:
    from engine.security.keys import load_public_key, read_key_url
    from engine.security.tokens import AuthenticationError, TokenVerifier, decode_unverified

    if bool(args.secret_key) == bool(args.public_key):
        raise SettingError(
            "give exactly one of --secret-key and --public-key (file:///path or data:;base64,...)"
        )
    key: Any = (
        read_key_url(args.secret_key, "--secret-key")
        if args.secret_key
        else load_public_key(args.public_key, "--public-key")
    )
    token = _token_of(args)
    try:
        role = TokenVerifier(key).role(token)
    except AuthenticationError as exc:
        print(f"magnetar: {exc}", file=sys.stderr)
        return 1
    _, claims = decode_unverified(token)
    print(orjson.dumps({**claims, "sub": role}).decode())
    return 0


def _ok(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        out = fn(args)
        return 0 if out is None else int(out)

    return run


def _token_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("token", nargs="?", help="the token (or --token-file / --stdin)")
    p.add_argument("-i", "--stdin", action="store_true", help="read the token from standard input")
    p.add_argument("-f", "--token-file", dest="token_file", help="read the token from a file")


def add_tokens_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``tokens`` and its verbs."""
    tokens = sub.add_parser("tokens", help="create keys and tokens (as pulsar tokens)")
    tsub = tokens.add_subparsers(dest="tokens_verb", metavar="VERB")
    p = tsub.add_parser("create-secret-key", help="a new secret key for HS256 tokens")
    p.add_argument(
        "-a", "--signature-algorithm", dest="algorithm", default="HS256", help="HS256 (default), HS384, HS512"
    )
    p.add_argument("-o", "--output", help="write the key to this file (created readable by you only)")
    p.add_argument("-b", "--base64", action="store_true", help="base64 text instead of raw bytes")
    p.set_defaults(handler=_ok(_secret_key))
    p = tsub.add_parser("create-key-pair", help="a new private/public key pair for RS256 or ES256 tokens")
    p.add_argument(
        "-a", "--signature-algorithm", dest="algorithm", default="RS256", help="RS256 (default), ES256, ..."
    )
    p.add_argument("--output-private-key", required=True, help="private key file (DER, readable by you only)")
    p.add_argument("--output-public-key", required=True, help="public key file (DER)")
    p.set_defaults(handler=_ok(_key_pair))
    p = tsub.add_parser("create", help="a token for a role")
    p.add_argument("-s", "--subject", required=True, help="the role the token authenticates as")
    p.add_argument(
        "-e", "--expiry-time", dest="expiry_time", help="lifetime, e.g. 1d, 12h, 1y (default: none)"
    )
    p.add_argument("-sk", "--secret-key", dest="secret_key", help="file:///path or data:;base64,KEY")
    p.add_argument("-pk", "--private-key", dest="private_key", help="file:///path or data:;base64,KEY")
    p.add_argument(
        "-a", "--signature-algorithm", dest="algorithm", help="default HS256, RS256 or ES256 by key"
    )
    p.add_argument("--headers", action="append", metavar="NAME=VALUE", help="an extra JWT header")
    p.set_defaults(handler=_ok(_create))
    p = tsub.add_parser("show", help="print a token's header and claims (without checking it)")
    _token_input(p)
    p.set_defaults(handler=_ok(_show))
    p = tsub.add_parser("validate", help="check a token's signature and expiry; print its claims")
    _token_input(p)
    p.add_argument("-sk", "--secret-key", dest="secret_key", help="file:///path or data:;base64,KEY")
    p.add_argument("-pk", "--public-key", dest="public_key", help="file:///path or data:;base64,KEY")
    p.set_defaults(handler=_ok(_validate))
