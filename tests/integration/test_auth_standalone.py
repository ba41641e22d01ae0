"""Authentication, authorization and TLS on a real ``magnetar standalone``, and the CLI speaking them."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.broker import free_port
from tests.auth_support import AuthSetup, auth_setup, call

EXAMPLE = Path(__file__).parent / "exclaim_example.py"
TOKEN_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"


@dataclass
class Standalone:
    setup: AuthSetup
    https: str
    http: str
    context: ssl.SSLContext

    def call(
        self, method: str, path: str, role: str | None = None, body: object = None
    ) -> tuple[int, object]:
        token = self.setup.tokens[role] if role else None
        return call(self.https, method, path, token, body, self.context)


def magnetar(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    tmp = tmp_path_factory.mktemp("auth-standalone")
    setup = auth_setup(tmp)
    port, tls_port = free_port(), free_port()
    config = setup.worker_config(tmp / "functions_worker.yml", {"workerPortTls": tls_port})
    log = open(tmp / "standalone.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "engine", "standalone", "--config", str(config),
            "--port", str(port), "--data-dir", str(tmp / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"ready on https://127.0.0.1:{tls_port}" in line, f"standalone did not start: {line!r}"
        s = Standalone(
            setup, f"https://127.0.0.1:{tls_port}", f"http://127.0.0.1:{port}", setup.ssl_context()
        )
        assert s.call("PUT", "/admin/v2/tenants/ta", "admin", {"adminRoles": ["alice"]})[0] == 204
        assert s.call("PUT", "/admin/v2/tenants/tb", "admin", {"adminRoles": ["bob"]})[0] == 204
        yield s
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_no_token_expired_token_and_garbage_are_401(standalone: Standalone) -> None:
    status, body = standalone.call("GET", "/admin/v3/functions/ta/ns")
    assert status == 401 and "Bearer" in body["reason"]  # type: ignore[index]
    req = urllib.request.Request(standalone.https + "/admin/v3/functions/ta/ns")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30, context=standalone.context)
    assert info.value.code == 401 and info.value.headers["WWW-Authenticate"] == "Bearer"
    status, body = standalone.call("GET", "/admin/v3/functions/ta/ns", "expired")
    assert (status, body) == (401, {"reason": "the token has expired"})
    status, _ = call(
        standalone.https, "GET", "/admin/v3/functions/ta/ns", "not-a-jwt", context=standalone.context
    )
    assert status == 401
    # The plain HTTP port asks for credentials just the same.
    assert call(standalone.http, "GET", "/admin/v2/worker/cluster")[0] == 401


def test_health_paths_stay_open(standalone: Standalone) -> None:
    assert standalone.call("GET", "/metrics")[0] == 200
    assert standalone.call("GET", "/initialized")[0] == 204


def test_tenant_admin_and_superuser_allowed_other_tenant_forbidden(standalone: Standalone) -> None:
    assert standalone.call("GET", "/admin/v3/functions/ta/ns", "alice") == (200, [])
    assert standalone.call("GET", "/admin/v3/functions/ta/ns", "admin") == (200, [])
    status, body = standalone.call("GET", "/admin/v3/functions/ta/ns", "bob")
    assert status == 403 and "'bob' is not authorized" in body["reason"]  # type: ignore[index]
    # Worker routes and tenant creation are the superuser's.
    assert standalone.call("GET", "/admin/v2/worker/cluster", "alice")[0] == 403
    assert standalone.call("GET", "/admin/v2/worker/cluster", "admin")[0] == 200
    assert standalone.call("PUT", "/admin/v2/tenants/tc", "alice", {"adminRoles": ["alice"]})[0] == 403
    assert standalone.call("GET", "/admin/v2/tenants/ta", "alice") == (
        200,
        {"adminRoles": ["alice"], "allowedClusters": []},
    )
    assert standalone.call("GET", "/admin/v2/tenants/ta", "bob")[0] == 403
    # Tenants named like internal routes are tenants like any other.
    assert standalone.call("PUT", "/admin/v2/tenants/leader", "admin", {"adminRoles": ["alice"]})[0] == 204
    assert standalone.call("GET", "/admin/v3/functions/leader/ns", "alice") == (200, [])
    assert standalone.call("GET", "/admin/v3/functions/leader/ns/f", "alice")[0] == 404
    assert standalone.call("GET", "/admin/v3/functions/leader/ns", "bob")[0] == 403
    # The internal leader route needs the worker's (superuser) role.
    assert standalone.call("PUT", "/admin/v3/functions/leader/ta/ns/f", "alice", {"metadata": None})[0] == 403


def test_namespace_grant_gives_functions_on_that_namespace_only(standalone: Standalone) -> None:
    assert standalone.call("GET", "/admin/v3/functions/ta/ns", "carol")[0] == 403
    assert (
        standalone.call("POST", "/admin/v2/namespaces/ta/ns/permissions/carol", "alice", ["functions"])[0]
        == 204
    )
    assert standalone.call("GET", "/admin/v2/namespaces/ta/ns/permissions", "alice") == (
        200,
        {"carol": ["functions"]},
    )
    assert standalone.call("GET", "/admin/v3/functions/ta/ns", "carol") == (200, [])
    assert standalone.call("GET", "/admin/v3/functions/ta/other", "carol")[0] == 403
    # bob administers tb, not ta: he cannot grant on ta's namespaces.
    assert (
        standalone.call("POST", "/admin/v2/namespaces/ta/ns/permissions/bob", "bob", ["functions"])[0] == 403
    )
    status, body = standalone.call("POST", "/admin/v2/namespaces/ta/ns/permissions/carol", "alice", ["fly"])
    assert status == 400 and "actions: got 'fly'" in body["reason"]  # type: ignore[index]
    assert standalone.call("DELETE", "/admin/v2/namespaces/ta/ns/permissions/carol", "alice")[0] == 204
    assert standalone.call("GET", "/admin/v3/functions/ta/ns", "carol")[0] == 403


def _create_args(standalone: Standalone, name: str) -> list[str]:
    return [
        "functions", "create", "--py", str(EXAMPLE), "--classname", "exclaim_example.Exclaim",
        "--inputs", f"persistent://ta/ns/{name}-in", "--output", f"persistent://ta/ns/{name}-out",
        "--tenant", "ta", "--namespace", "ns", "--name", name,
    ]  # fmt: skip


def test_cli_with_auth_params_over_tls(standalone: Standalone) -> None:
    alice = standalone.setup.tokens["alice"]
    auth = [
        "--admin-url", standalone.https, "--auth-plugin", TOKEN_PLUGIN,
        "--auth-params", f"token:{alice}", "--tls-trust-cert-path", str(standalone.setup.cert),
    ]  # fmt: skip
    out = magnetar(*_create_args(standalone, "viaflags"), *auth)
    assert out.returncode == 0, out.stderr
    assert "Created successfully" in out.stdout  # pulsar-admin's message
    # State of the tenant's functions is the tenant admin's to read, not another tenant's.
    assert standalone.call("GET", "/admin/v3/functions/ta/ns/viaflags/state/k", "alice")[0] == 404
    assert standalone.call("GET", "/admin/v3/functions/ta/ns/viaflags/state/k", "bob")[0] == 403
    # Global options before the verb work the same.
    out = magnetar(*auth, "functions", "list", "--tenant", "ta", "--namespace", "ns")
    assert out.returncode == 0 and "viaflags" in out.stdout, out.stderr
    # Another tenant's admin is refused; no token is refused; an untrusted certificate is named.
    bob = ["--auth-params", f"token:{standalone.setup.tokens['bob']}"]
    out = magnetar("functions", "get", "--fqfn", "ta/ns/viaflags", *auth, *bob)
    assert out.returncode == 1 and "403" in out.stderr
    out = magnetar(
        "functions", "get", "--fqfn", "ta/ns/viaflags", "--admin-url", standalone.https,
        "--tls-trust-cert-path", str(standalone.setup.cert),
    )  # fmt: skip
    assert out.returncode == 1 and "401" in out.stderr
    out = magnetar("functions", "get", "--fqfn", "ta/ns/viaflags", "--admin-url", standalone.https)
    assert out.returncode == 1 and "--tls-trust-cert-path" in out.stderr
    out = magnetar(
        "--tls-allow-insecure", "--admin-url", standalone.https, "functions", "list", "--tenant", "ta"
    )
    assert out.returncode == 1 and "401" in out.stderr  # the certificate was not checked; the token is


def test_cli_with_client_conf_over_tls(standalone: Standalone, tmp_path: Path) -> None:
    token_file = tmp_path / "alice.token"
    token_file.write_text(standalone.setup.tokens["alice"])
    conf = tmp_path / "client.conf"
    conf.write_text(
        f"webServiceUrl={standalone.https}/\n"
        f"authPlugin={TOKEN_PLUGIN}\n"
        f"authParams=file://{token_file}\n"
        f"tlsTrustCertsFilePath={standalone.setup.cert}\n"
    )
    out = magnetar("--client-conf", str(conf), *_create_args(standalone, "viaconf"))
    assert out.returncode == 0, out.stderr
    out = magnetar("functions", "get", "--fqfn", "ta/ns/viaconf", env={"MAGNETAR_CLIENT_CONF": str(conf)})
    assert out.returncode == 0, out.stderr
    assert '"name": "viaconf"' in out.stdout
    out = magnetar("tenants", "get", "ta", "--client-conf", str(conf))
    assert out.returncode == 0 and '"alice"' in out.stdout, out.stderr


def test_tenants_cli_as_superuser(standalone: Standalone, tmp_path: Path) -> None:
    conf = tmp_path / "client.conf"
    conf.write_text(
        f"webServiceUrl={standalone.https}\nauthParams=token:{standalone.setup.tokens['admin']}\n"
        f"tlsTrustCertsFilePath={standalone.setup.cert}\n"
    )
    env = {"MAGNETAR_CLIENT_CONF": str(conf)}
    assert magnetar("tenants", "create", "td", "--admin-roles", "dora,dan", env=env).returncode == 0
    out = magnetar("tenants", "list", env=env)
    assert out.returncode == 0 and "td" in out.stdout.split()
    assert magnetar("tenants", "update", "td", "--admin-roles", "dora", env=env).returncode == 0
    out = magnetar("tenants", "get", "td", env=env)
    assert '"dora"' in out.stdout and '"dan"' not in out.stdout
    out = magnetar("tenants", "create", "td", env=env)
    assert out.returncode == 1 and "409" in out.stderr
    out = magnetar(
        "namespaces", "grant-permission", "td/ns", "--role", "erin", "--actions", "functions", env=env
    )
    assert out.returncode == 0, out.stderr
    out = magnetar("namespaces", "permissions", "td/ns", env=env)
    assert '"erin"' in out.stdout
    assert magnetar("tenants", "delete", "td", env=env).returncode == 0
    assert standalone.call("GET", "/admin/v2/tenants/td", "admin")[0] == 404
    assert standalone.call("GET", "/admin/v2/namespaces/td/ns/permissions", "admin") == (200, {})


def test_tokens_cli(tmp_path: Path) -> None:
    key = tmp_path / "secret.key"
    assert magnetar("tokens", "create-secret-key", "--output", str(key)).returncode == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    out = magnetar(
        "tokens", "create", "--secret-key", f"file://{key}", "--subject", "zoe", "--expiry-time", "1d"
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    out = magnetar("tokens", "show", token)
    assert '"sub":"zoe"' in out.stdout and '"exp"' in out.stdout
    out = magnetar("tokens", "validate", "-sk", f"file://{key}", token)
    assert out.returncode == 0 and '"sub":"zoe"' in out.stdout
    private, public = tmp_path / "private.key", tmp_path / "public.key"
    out = magnetar(
        "tokens", "create-key-pair", "--output-private-key", str(private), "--output-public-key", str(public)
    )
    assert out.returncode == 0, out.stderr
    out = magnetar("tokens", "create", "--private-key", f"file://{private}", "--subject", "yan")
    rs_token = out.stdout.strip()
    assert magnetar("tokens", "validate", "--public-key", f"file://{public}", rs_token).returncode == 0
    out = magnetar("tokens", "validate", "--secret-key", f"file://{key}", rs_token)
    assert out.returncode == 1 and "not valid" in out.stderr
    out = magnetar(
        "tokens", "create", "--secret-key", f"file://{key}", "--subject", "x", "--expiry-time", "soon"
    )
    assert out.returncode == 2 and "--expiry-time: got 'soon'" in out.stderr


def test_mesh_routes_are_authorized_like_functions(standalone: Standalone) -> None:
    assert standalone.call("GET", "/admin/v3/meshes/ta/ns")[0] == 401
    assert standalone.call("GET", "/admin/v3/meshes/ta/ns", "alice") == (200, [])
    assert standalone.call("GET", "/admin/v3/meshes/ta/ns", "admin") == (200, [])
    status, body = standalone.call("GET", "/admin/v3/meshes/ta/ns", "bob")
    assert status == 403 and "'bob' is not authorized" in body["reason"]  # type: ignore[index]
    mesh = {
        "name": "m",
        "tenant": "ta",
        "namespace": "ns",
        "py": f"file://{EXAMPLE}",
        "functionInfos": [
            {"name": "one", "classname": "exclaim_example.Exclaim", "inputs": ["a"], "output": "b"},
            {"name": "two", "classname": "exclaim_example.Exclaim", "inputs": ["b"], "output": "c"},
        ],
    }
    assert standalone.call("POST", "/admin/v3/meshes/ta/ns/m", "bob", {"mesh": mesh})[0] == 403
    status, body = standalone.call("POST", "/admin/v3/meshes/ta/ns/m", "alice", {"mesh": mesh})
    assert status == 200, body
    assert standalone.call("GET", "/admin/v3/meshes/ta/ns", "alice") == (200, ["m"])
    assert {"one", "two"} <= set(standalone.call("GET", "/admin/v3/functions/ta/ns", "alice")[1])  # type: ignore[arg-type]
    assert standalone.call("GET", "/admin/v3/meshes/ta/ns/m/status", "bob")[0] == 403
    # The internal leader route needs the worker's (superuser) role.
    assert standalone.call("PUT", "/admin/v3/meshes/leader/ta/ns/m", "alice", {"change": None})[0] == 403
    assert standalone.call("DELETE", "/admin/v3/meshes/ta/ns/m", "alice")[0] == 200
    assert not {"one", "two"} & set(standalone.call("GET", "/admin/v3/functions/ta/ns", "alice")[1])  # type: ignore[arg-type]
