"""State semantics through the REST API of a real worker, and files private to their owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.cluster.conftest import Cluster, wait_until
from tests.security.conftest import call, call_json, create_function, unique


def _state(port: int, name: str, key: str) -> tuple[int, dict[str, object]]:
    ans = call(port, "GET", f"/admin/v3/functions/public/default/{name}/state/{key}")
    return ans.status, ans.json()


def _put(port: int, name: str, key: str, body: dict[str, object]) -> int:
    return call_json(port, "POST", f"/admin/v3/functions/public/default/{name}/state/{key}", body).status


def test_counter_and_value_share_one_key_space(worker1: Cluster) -> None:
    port, name = worker1.workers[0].port, unique("kv")
    assert create_function(port, name).status == 200
    assert _put(port, name, "k", {"numberValue": 7}) == 200
    assert _state(port, name, "k")[1]["numberValue"] == 7
    assert _put(port, name, "k", {"stringValue": "hello"}) == 200  # a string replaces the counter
    status, body = _state(port, name, "k")
    assert status == 200 and body.get("stringValue") == "hello" and "numberValue" not in body
    assert _put(port, name, "k", {"numberValue": -(2**63)}) == 200  # and a number replaces the string
    status, body = _state(port, name, "k")
    assert body.get("numberValue") == -(2**63) and "stringValue" not in body
    assert _put(port, name, "k", {"numberValue": 2**63}) == 400
    assert _put(port, name, "k", {"numberValue": 2.5}) == 400
    assert _state(port, name, "k")[1]["numberValue"] == -(2**63)  # rejected writes changed nothing


def test_delete_removes_the_functions_state(worker1: Cluster) -> None:
    port, name = worker1.workers[0].port, unique("del")
    assert create_function(port, name).status == 200
    assert _put(port, name, "a", {"numberValue": 3}) == 200
    assert _put(port, name, "b", {"stringValue": "x"}) == 200
    ans = call(port, "DELETE", f"/admin/v3/functions/public/default/{name}")
    assert ans.status == 200, ans.body
    assert create_function(port, name).status == 200
    assert _state(port, name, "a")[0] == 404
    assert _state(port, name, "b")[0] == 404


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_are_private_to_their_owner(worker1: Cluster) -> None:
    port, name = worker1.workers[0].port, unique("perm")
    assert create_function(port, name).status == 200
    assert _put(port, name, "k", {"numberValue": 1}) == 200
    data = Path(worker1.data_root) / worker1.workers[0].worker_id
    assert _mode(data) == 0o700
    db = data / "state.db"
    assert wait_until(lambda: db.exists() and (data / "state.db-wal").exists())
    for path in (db, data / "state.db-wal", data / "state.db-shm"):
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    cache = data / "package-cache"
    packages = [p for p in cache.rglob("*") if p.is_file()]
    assert packages, list(cache.rglob("*"))
    for path in packages:
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    for path in [cache, *(p for p in cache.rglob("*") if p.is_dir())]:
        assert _mode(path) == 0o700, (path, oct(_mode(path)))
    for path in data.rglob("*"):
        assert not _mode(path) & 0o077, (path, oct(_mode(path)))
