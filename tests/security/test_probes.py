"""The hostile probe of the REST API, item by item, against a real worker process."""

from __future__ import annotations

import base64
import threading
import time

import orjson
import pytest

from engine.proto import Function_pb2 as pb
from tests.cluster.conftest import Cluster
from tests.security.conftest import (
    EXAMPLE,
    call,
    call_json,
    create_function,
    multipart,
    unique,
)


def port(c: Cluster) -> int:
    return c.workers[0].port


def _no_exception_text(reason: str) -> None:
    for marker in ("Traceback", "Error:", "Exception", "KeyError", 'File "'):
        assert marker not in reason, reason


# -- download serves only stored packages --------------------------------------------------------


def test_download_does_not_serve_local_files(worker1: Cluster) -> None:
    for path in ("/etc/passwd", "file:///etc/passwd", "../../../../etc/passwd"):
        ans = call(port(worker1), "GET", f"/admin/v3/functions/download?path={path}")
        assert ans.status == 400, (path, ans.status, ans.body[:80])
        assert "stored package" in ans.reason
        assert b"root:" not in ans.body


def test_download_serves_an_uploaded_package(worker1: Cluster) -> None:
    body, ctype = multipart({"data": ("pkg.py", b"print('hi')\n")})
    up = call(port(worker1), "POST", "/admin/v3/functions/upload", body, {"Content-Type": ctype})
    assert up.status == 200, up.body
    stored = up.json()["path"]
    ans = call(port(worker1), "GET", f"/admin/v3/functions/download?path={stored}")
    assert ans.status == 200 and ans.body == b"print('hi')\n"


# -- the internal namespace ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("output", "persistent://{ns}/metadata"),
        ("inputs", ["persistent://{ns}/assignments"]),
        ("logTopic", "persistent://{ns}/coordinate"),
        ("deadLetterTopic", "{ns}/packages"),
        ("topicsPattern", "persistent://{ns}/.*"),
    ],
)
def test_internal_namespace_is_no_function_topic(worker1: Cluster, field: str, value: object) -> None:
    ns = worker1.namespace
    filled = [v.format(ns=ns) for v in value] if isinstance(value, list) else str(value).format(ns=ns)
    overrides: dict[str, object] = {field: filled}
    if field == "deadLetterTopic":
        overrides["maxMessageRetries"] = 1
    if field == "topicsPattern":
        overrides["inputs"] = []
    name = unique("ns")
    ans = create_function(port(worker1), name, **overrides)
    assert ans.status == 400, ans.body
    reason = ans.reason
    assert "internal namespace" in reason and ns in reason
    assert ("inputs" if field == "topicsPattern" else field) in reason
    assert call(port(worker1), "GET", f"/admin/v3/functions/public/default/{name}").status == 404


def test_default_functions_namespace_is_reserved_too(worker1: Cluster) -> None:
    ans = create_function(port(worker1), unique("ns"), output="persistent://public/functions/metadata")
    assert ans.status == 400 and "internal namespace" in ans.reason


def test_trigger_target_cannot_be_internal_or_invalid(worker1: Cluster) -> None:
    name = unique("trg")
    assert create_function(port(worker1), name).status == 200
    path = f"/admin/v3/functions/public/default/{name}/trigger"
    ans = call_json(
        port(worker1), "POST", path, {"data": "x", "topic": f"persistent://{worker1.namespace}/metadata"}
    )
    assert ans.status == 400 and "internal namespace" in ans.reason
    t0 = time.monotonic()
    ans = call_json(port(worker1), "POST", path, {"data": "x", "topic": "persistent://a/b/c/d"})
    assert ans.status == 400 and ans.reason.startswith("topic:")
    ans = call_json(port(worker1), "POST", path, {"data": "x", "topic": "not-an-input"})
    assert ans.status == 400 and "inputs" in ans.reason
    assert time.monotonic() - t0 < 3


# -- limits --------------------------------------------------------------------------------------


def test_parallelism_limit(worker1: Cluster) -> None:
    name = unique("par")
    t0 = time.monotonic()
    ans = create_function(port(worker1), name, parallelism=1_000_000_000)
    assert ans.status == 400 and "parallelism" in ans.reason and "maxParallelism is 1000" in ans.reason
    assert time.monotonic() - t0 < 5
    assert call(port(worker1), "GET", "/admin/v2/worker-stats/metrics").status == 200


# -- the leader endpoint -------------------------------------------------------------------------


def _leader_put(c: Cluster, fqfn: str, body: object) -> tuple[int, str]:
    ans = call_json(port(c), "PUT", f"/admin/v3/functions/leader/{fqfn}", body)
    return ans.status, ans.reason if ans.status != 200 else ""


def test_leader_write_validates_like_a_submission(worker1: Cluster) -> None:
    name = unique("ldr")
    fqfn = f"public/default/{name}"
    status, reason = _leader_put(worker1, fqfn, {"metadata": "!!!"})
    assert status == 400 and "metadata" in reason
    empty = base64.b64encode(pb.FunctionMetaData().SerializeToString()).decode()
    status, reason = _leader_put(worker1, fqfn, {"metadata": empty or "AA=="})
    assert status == 400, reason
    md = pb.FunctionMetaData()
    d = md.functionDetails
    d.tenant, d.namespace, d.name = "public", "default", name
    d.className = "exclaim_example.Exclaim"
    d.runtime = pb.FunctionDetails.PYTHON
    d.parallelism = 1
    md.packageLocation.packagePath = str(EXAMPLE)  # a local file on the worker
    raw = base64.b64encode(md.SerializeToString()).decode()
    status, reason = _leader_put(worker1, fqfn, {"metadata": raw, "expectedVersion": None})
    assert status == 400 and "packageLocation" in reason
    status, _ = _leader_put(worker1, fqfn, {"metadata": raw, "expectedVersion": "x"})
    assert status == 400
    status, _ = _leader_put(worker1, fqfn, [1, 2])
    assert status == 400
    assert call(port(worker1), "GET", f"/admin/v3/functions/{fqfn}").status == 404


# -- concurrent creates --------------------------------------------------------------------------


def test_concurrent_creates_one_wins(worker1: Cluster) -> None:
    name = unique("race")
    barrier = threading.Barrier(6)
    statuses: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        barrier.wait()
        ans = create_function(port(worker1), name)
        with lock:
            statuses.append(ans.status)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200, 409, 409, 409, 409, 409], statuses
    info = call(port(worker1), "GET", f"/admin/v3/functions/public/default/{name}").json()
    assert info["name"] == name


# -- every error is JSON with the right status ---------------------------------------------------


def test_patch_is_405_json(worker1: Cluster) -> None:
    ans = call(port(worker1), "PATCH", "/admin/v3/functions/public/default/x")
    assert ans.status == 405
    _no_exception_text(ans.reason)


def test_over_large_body_is_413_json(worker1: Cluster) -> None:
    name = unique("big")
    assert create_function(port(worker1), name).status == 200
    body = b'{"stringValue": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    ans = call(port(worker1), "POST", f"/admin/v3/functions/public/default/{name}/state/k", body,
               {"Content-Type": "application/json"})  # fmt: skip
    assert ans.status == 413, ans.status
    assert "bytes" in ans.reason


def test_over_long_url_is_414_json(worker1: Cluster) -> None:
    ans = call(port(worker1), "GET", "/admin/v3/functions/public/default/" + "x" * 20000)
    assert ans.status == 414, (ans.status, ans.body[:200])
    assert ans.reason
    ans = call(port(worker1), "GET", "/admin/v3/functions/public/default", headers={"X-Big": "y" * 20000})
    assert ans.status == 431, (ans.status, ans.body[:200])
    assert ans.reason


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"numberValue": "abc"}',
        b'{"numberValue": 9223372036854775808}',
        b'{"numberValue": 1.5}',
        b'{"numberValue": true}',
        b'{"byteValue": "***not base64***"}',
        b'{"stringValue": 5}',
        b"[1, 2]",
        b"7",
        b"{}",
    ],
)
def test_malformed_state_bodies_are_400(worker1: Cluster, body: bytes) -> None:
    name = _shared_function(worker1)
    ans = call(port(worker1), "POST", f"/admin/v3/functions/public/default/{name}/state/k", body,
               {"Content-Type": "application/json"})  # fmt: skip
    assert ans.status == 400, (body, ans.status, ans.body)
    _no_exception_text(ans.reason)


@pytest.mark.parametrize("body", [b"[1, 2]", b"42", b"{not json", b'{"data": 5}'])
def test_malformed_trigger_bodies_are_400(worker1: Cluster, body: bytes) -> None:
    name = _shared_function(worker1)
    ans = call(port(worker1), "POST", f"/admin/v3/functions/public/default/{name}/trigger", body,
               {"Content-Type": "application/json"})  # fmt: skip
    assert ans.status == 400, (body, ans.status, ans.body)
    _no_exception_text(ans.reason)


def test_huge_trigger_body_is_4xx(worker1: Cluster) -> None:
    name = _shared_function(worker1)
    body = orjson.dumps({"data": "x" * (5 * 1024 * 1024)})
    ans = call(port(worker1), "POST", f"/admin/v3/functions/public/default/{name}/trigger", body,
               {"Content-Type": "application/json"})  # fmt: skip
    assert ans.status == 413, ans.status
    _no_exception_text(ans.reason)


@pytest.mark.parametrize("bad", ["a%2fb", "%2e%2e", "..", "%2e", "a%20b"])
def test_names_follow_pulsars_rules(worker1: Cluster, bad: str) -> None:
    for path in (
        f"/admin/v3/functions/public/default/{bad}",
        f"/admin/v3/functions/public/{bad}/f",
        f"/admin/v3/functions/{bad}/default/f",
    ):
        ans = call(port(worker1), "GET", path)
        assert ans.status in (400, 404), (path, ans.status)
        _no_exception_text(ans.reason)
    body, ctype = multipart(
        {"functionConfig": (None, b"{}"), "data": ("exclaim_example.py", EXAMPLE.read_bytes())}
    )
    ans = call(
        port(worker1), "POST", f"/admin/v3/functions/public/default/{bad}", body, {"Content-Type": ctype}
    )
    assert ans.status in (400, 404), (bad, ans.status, ans.body)
    _no_exception_text(ans.reason)
    listed = call(port(worker1), "GET", "/admin/v3/functions/public/default").json()
    assert ".." not in listed and "." not in listed


_SHARED: dict[int, str] = {}


def _shared_function(c: Cluster) -> str:
    key = port(c)
    if key not in _SHARED:
        name = unique("shared")
        assert create_function(key, name).status == 200
        _SHARED[key] = name
    return _SHARED[key]
