"""State-store semantics on both backends: one key space for counters and values, delete of a function."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from engine.state import SqliteStateStore, open_state_store


def test_counter_and_value_are_one_key_space(state_url: str) -> None:
    store = open_state_store(state_url)
    store.commit("f", {"k": 5}, set(), {})
    store.commit("f", {}, set(), {"k": b"text"})  # a value replaces the counter
    assert store.get_counter("f", "k") is None and store.get_value("f", "k") == b"text"
    store.commit("f", {"k": 2}, set(), {})  # and a counter replaces the value
    assert store.get_counter("f", "k") == 2 and store.get_value("f", "k") is None
    store.commit("f", {}, {"k"}, {})  # deleting the counter leaves nothing behind
    assert store.get_counter("f", "k") is None and store.get_value("f", "k") is None
    store.commit("f", {"k": 1}, set(), {"other": b"v"})
    assert store.get_counter("f", "k") == 1 and store.get_value("f", "other") == b"v"
    store.close()


def test_delete_namespace_removes_only_that_function(state_url: str) -> None:
    store = open_state_store(state_url)
    store.commit("t/n/a", {"c": 1}, set(), {"v": b"x"}, {"in-0": (None, "p1")})
    store.commit("t/n/b", {"c": 2}, set(), {"v": b"y"})
    store.delete_namespace("t/n/a")
    assert store.get_counter("t/n/a", "c") is None and store.get_value("t/n/a", "v") is None
    assert store.get_positions("t/n/a") == {}
    assert store.get_counter("t/n/b", "c") == 2 and store.get_value("t/n/b", "v") == b"y"
    store.close()


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # even under a permissive umask
    try:
        store = SqliteStateStore(str(tmp_path / "sub" / "state.db"))
        store.commit("f", {"k": 1}, set(), {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "sub").st_mode) == 0o700
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        assert stat.S_IMODE(os.stat(tmp_path / "sub" / name).st_mode) == 0o600, name
    store.close()
