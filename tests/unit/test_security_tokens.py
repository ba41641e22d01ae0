"""Tokens, keys, credentials and the worker's security settings (pure logic)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import jwt
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli.http_client import read_client_conf, target
from engine.cli.main import build_parser
from engine.security.auth_settings import AuthSettings
from engine.security.authn import TokenAuthenticationProvider, worker_token
from engine.security.authz import AuthorizationService
from engine.security.credentials import token_from_auth_params
from engine.security.errors import SettingError
from engine.security.keys import (
    create_key_pair,
    create_secret_key,
    load_private_key,
    load_public_key,
    read_key_url,
    write_private_file,
)
from engine.security.tenants import TenantStore
from engine.security.tokens import (
    AuthenticationError,
    TokenVerifier,
    create_token,
    decode_unverified,
    parse_duration,
)

SECRET = create_secret_key()
VERIFIER = TokenVerifier(SECRET)


def _data_url(data: bytes) -> str:
    return "data:;base64," + base64.b64encode(data).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac_token(claims: dict[str, str], key: bytes) -> str:
    """An HS256 token signed by hand (PyJWT itself refuses a public key as an HMAC secret)."""
    signing = _b64(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64(orjson.dumps(claims))
    return signing + "." + _b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def test_secret_key_token_round_trip_names_the_role() -> None:
    token = create_token("alice", SECRET, expires_in=3600)
    assert VERIFIER.role(token) == "alice"
    assert decode_unverified(token)[0]["alg"] == "HS256"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_key_pair_tokens_verify_with_the_public_key_only(tmp_path: Path, algorithm: str) -> None:
    private_der, public_der = create_key_pair(algorithm)
    (tmp_path / "private.key").write_bytes(private_der)
    private = load_private_key(f"file://{tmp_path / 'private.key'}")
    public = load_public_key(_data_url(public_der))
    token = create_token("bob", private)
    assert decode_unverified(token)[0]["alg"] == algorithm
    assert TokenVerifier(public).role(token) == "bob"
    other_public = load_public_key(_data_url(create_key_pair(algorithm)[1]))
    with pytest.raises(AuthenticationError, match="not valid"):
        TokenVerifier(other_public).role(token)


def test_expired_token_is_an_authentication_error() -> None:
    token = create_token("alice", SECRET, expires_in=-10)
    with pytest.raises(AuthenticationError, match="expired"):
        VERIFIER.role(token)


def test_token_of_another_key_or_algorithm_is_refused() -> None:
    with pytest.raises(AuthenticationError):
        VERIFIER.role(create_token("alice", create_secret_key()))
    # An unsigned token ("alg": "none") is never accepted.
    unsigned = jwt.encode({"sub": "admin"}, None, algorithm="none")
    with pytest.raises(AuthenticationError):
        VERIFIER.role(unsigned)
    # An HMAC token signed with the public key's bytes cannot pass for a key-pair token.
    _, public_der = create_key_pair("RS256")
    forged = _hmac_token({"sub": "admin"}, public_der)
    with pytest.raises(AuthenticationError):
        TokenVerifier(load_public_key(_data_url(public_der))).role(forged)


def test_token_without_a_string_subject_is_refused() -> None:
    with pytest.raises(AuthenticationError):
        VERIFIER.role(jwt.encode({"role": "x"}, SECRET, algorithm="HS256"))
    with pytest.raises(AuthenticationError, match="not a role name"):
        VERIFIER.role(jwt.encode({"sub": ""}, SECRET, algorithm="HS256"))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="abcXYZ012-_.=", max_size=200)))
def test_any_string_gives_a_role_or_a_clean_authentication_error(token: str) -> None:
    try:
        role = VERIFIER.role(token)
    except AuthenticationError:
        return
    assert isinstance(role, str) and role


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(["", "Bearer ", "bearer ", "Basic ", "Bearer  "]))
def test_any_authorization_header_gives_a_role_or_a_clean_error(value: str, scheme: str) -> None:
    provider = TokenAuthenticationProvider(
        AuthSettings(authentication_enabled=True, token_secret_key=_data_url(SECRET))
    )
    try:
        provider.authenticate({"Authorization": scheme + value})
    except AuthenticationError:
        pass


def test_parse_duration_units_and_errors() -> None:
    assert parse_duration("1d") == 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("30") == 30
    assert parse_duration("1y") == 365 * 86400
    for bad in ("", "1x", "-1d", "0s", "d"):
        with pytest.raises(SettingError, match="--expiry-time"):
            parse_duration(bad)


def test_key_urls(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(b"\x00\x01secret")
    assert read_key_url(f"file://{tmp_path / 'k'}", "f") == b"\x00\x01secret"
    assert read_key_url(_data_url(b"abc"), "f") == b"abc"
    with pytest.raises(SettingError, match=r"tokenSecretKey: .*cannot read the key"):
        read_key_url("file:///no/such/key", "tokenSecretKey")
    with pytest.raises(SettingError, match="not valid base64"):
        read_key_url("data:;base64,@@@", "tokenSecretKey")
    with pytest.raises(SettingError, match="not a public RSA or EC key"):
        load_public_key(_data_url(b"junk"))


def test_key_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    write_private_file(str(path), b"new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"new"


def test_auth_params_forms(tmp_path: Path) -> None:
    plugin = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
    (tmp_path / "t").write_text("abc.def.ghi\n")
    assert token_from_auth_params(plugin, "token:abc") == "abc"
    assert token_from_auth_params(plugin, f"file://{tmp_path / 't'}") == "abc.def.ghi"
    assert token_from_auth_params(None, '{"token": "xyz"}') == "xyz"
    assert token_from_auth_params(plugin, None) is None
    with pytest.raises(SettingError, match="--auth-plugin"):
        token_from_auth_params("org.apache.pulsar.client.impl.auth.AuthenticationTls", "token:abc")
    with pytest.raises(SettingError, match="cannot read the token file"):
        token_from_auth_params(plugin, "file:///no/such/token")


def test_settings_from_an_apache_file_mapping() -> None:
    s = AuthSettings.from_mapping(
        {
            "authenticationEnabled": True,
            "authorizationEnabled": "true",
            "superUserRoles": "admin, ops",
            "properties": {"tokenSecretKey": "data:;base64,AAAA"},
            "tlsEnabled": False,
            "workerPort": 6750,  # an Apache setting that is not about security: ignored
        }
    )
    assert s.authentication_enabled and s.authorization_enabled
    assert s.super_user_roles == {"admin", "ops"}
    assert s.token_secret_key == "data:;base64,AAAA"
    merged = s.merged({"superUserRoles": "root", "tokenPublicKey": None})
    assert merged.super_user_roles == {"root"} and merged.authentication_enabled


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"authenticationEnabled": "yes"}, "authenticationEnabled: got 'yes'; expected true or false"),
        ({"authenticationEnabled": True}, "needs properties.tokenSecretKey"),
        ({"authorizationEnabled": True}, "needs authenticationEnabled"),
        ({"tlsEnabled": True, "workerPortTls": 6751}, "tlsEnabled needs tlsCertificateFilePath"),
        ({"workerPortTls": "http"}, "workerPortTls: got 'http'; expected a port number"),
        (
            {"authenticationProviders": ["com.example.Ldap"]},
            "authenticationProviders: got 'com.example.Ldap'",
        ),
        ({"superUserRoles": [1]}, "superUserRoles: got [1]"),
    ],
)
def test_settings_errors_name_the_field(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(SettingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        AuthSettings.from_mapping(mapping)


def test_a_misspelt_setting_is_named(caplog: pytest.LogCaptureFixture) -> None:
    AuthSettings.from_mapping({"authenticationEnable": True, "zookeeperServers": "zk:2181"})
    assert "authenticationEnable is not a setting Magnetar uses; did you mean authenticationEnabled?" in (
        caplog.text
    )
    assert "zookeeperServers" not in caplog.text


def test_worker_token_from_its_credentials_or_its_secret_key() -> None:
    given_token = create_token("worker", SECRET)
    s = AuthSettings(
        authentication_enabled=True,
        token_secret_key=_data_url(SECRET),
        super_user_roles=frozenset({"admin"}),
        broker_client_authentication_parameters=f"token:{given_token}",
    )
    assert worker_token(s) == given_token
    minted = worker_token(
        AuthSettings(
            authentication_enabled=True,
            token_secret_key=_data_url(SECRET),
            super_user_roles=frozenset({"admin"}),
        )
    )
    assert minted is not None and VERIFIER.role(minted) == "admin"
    assert worker_token(AuthSettings()) is None


def test_client_conf_properties(tmp_path: Path) -> None:
    conf = tmp_path / "client.conf"
    conf.write_text(
        "# comment\nwebServiceUrl=https://h:6751/\nauthPlugin = org.x.AuthenticationToken\n"
        "authParams=token:a=b\n\ntlsTrustCertsFilePath: /ca.pem\n"
    )
    assert read_client_conf(str(conf)) == {
        "webServiceUrl": "https://h:6751/",
        "authPlugin": "org.x.AuthenticationToken",
        "authParams": "token:a=b",
        "tlsTrustCertsFilePath": "/ca.pem",
    }


class _Msg:
    def __init__(self, key: str, value: bytes) -> None:
        self._key, self._value = key, value

    def partition_key(self) -> str:
        return self._key

    def data(self) -> bytes:
        return self._value


def test_tenant_records_apply_in_order_and_bad_records_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    store = TenantStore()
    store._on_batch(
        [
            _Msg("tenant/acme", orjson.dumps({"adminRoles": ["alice"], "allowedClusters": []})),
            _Msg("permission/acme/ns/carol", orjson.dumps(["functions"])),
            _Msg("tenant/broken", b"{not json"),
            _Msg("mystery/x", b"{}"),
            _Msg("permission/acme/ns/dave", orjson.dumps(["consume"])),
            _Msg("permission/acme/ns/dave", b""),
        ]
    )
    assert store.tenants["acme"].admin_roles == ["alice"]
    assert "broken" not in store.tenants
    assert store.grants("acme/ns") == {"carol": ["functions"]}
    assert "is not JSON; skipped" in caplog.text and "unknown kind; skipped" in caplog.text
    authz = AuthorizationService(
        AuthSettings(authentication_enabled=True, authorization_enabled=True, token_secret_key="data:,x",
                     super_user_roles=frozenset({"root"})),
        store,
    )  # fmt: skip
    assert authz.can_functions("root", "other", "ns")
    assert authz.can_functions("alice", "acme", "any")
    assert authz.can_functions("carol", "acme", "ns") and not authz.can_functions("carol", "acme", "ns2")
    assert not authz.can_functions("dave", "acme", "ns")
    assert not authz.is_tenant_admin("carol", "acme")
    store._on_batch([_Msg("tenant/acme", b"")])
    assert not authz.can_functions("alice", "acme", "any")


def test_admin_target_from_flags_env_and_client_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "client.conf"
    conf.write_text(
        "webServiceUrl=https://conf:1/\nauthParams=token:from-conf\ntlsAllowInsecureConnection=true\n"
    )
    monkeypatch.delenv("MAGNETAR_ADMIN_URL", raising=False)
    monkeypatch.setenv("MAGNETAR_CLIENT_CONF", str(conf))
    parser = build_parser()
    where = target(parser.parse_args(["functions", "list"]))
    assert (where.url, where.token) == ("https://conf:1", "from-conf")
    assert where.ssl is not None and not where.ssl.check_hostname  # tlsAllowInsecureConnection
    monkeypatch.setenv("MAGNETAR_ADMIN_URL", "http://env:2")
    assert target(parser.parse_args(["functions", "list"])).url == "http://env:2"
    # Before the verb or after it; after wins when both are given.
    args = parser.parse_args(["--admin-url", "http://a:3", "--auth-params", "token:t1", "functions", "list"])
    assert (target(args).url, target(args).token) == ("http://a:3", "t1")
    args = parser.parse_args(["--admin-url", "http://a:3", "functions", "list", "--admin-url", "http://b:4"])
    assert target(args).url == "http://b:4" and target(args).ssl is None
