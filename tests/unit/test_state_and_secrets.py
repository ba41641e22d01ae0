"""State stores (SQLite and a real PostgreSQL server, by the same tests) and secrets providers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.instance.secrets import make_secrets_provider
from engine.state import SqliteStateStore, StateConflict, StateStoreError, open_state_store


def test_commit_applies_deltas_resets_and_values(state_url: str) -> None:
    store = open_state_store(state_url)
    store.commit("t/n/f", {"a": 5, "b": -2}, set(), {"k": b"v"})
    store.commit("t/n/f", {"a": 3}, {"b"}, {"k": None, "j": b"w"})
    assert store.get_counter("t/n/f", "a") == 8
    assert store.get_counter("t/n/f", "b") is None
    assert store.get_value("t/n/f", "k") is None and store.get_value("t/n/f", "j") == b"w"
    assert store.get_counter("other/n/f", "a") is None
    store.close()


def test_reset_then_increment_in_one_batch(state_url: str) -> None:
    store = open_state_store(state_url)
    store.commit("f", {"a": 10}, set(), {})
    store.commit("f", {"a": 1}, {"a"}, {})
    assert store.get_counter("f", "a") == 1


def test_concurrent_threads_add_up(state_url: str) -> None:
    store = open_state_store(state_url)
    other = open_state_store(state_url)  # a second store object: as a second worker would have

    def work(s: object, keys: list[str]) -> None:
        for _ in range(200):
            s.commit("f", {k: 1 for k in keys}, set(), {})  # type: ignore[attr-defined]

    threads = [
        threading.Thread(target=work, args=(s, keys))
        for s in (store, other)
        for keys in (["n", "m"], ["m", "n"])  # opposite orders: must not deadlock
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_counter("f", "n") == 800 and other.get_counter("f", "m") == 800
    store.close()
    other.close()


def test_positions_move_only_from_the_expected_position(state_url: str) -> None:
    store = open_state_store(state_url)
    assert store.get_positions("f") == {}
    store.commit("f", {"n": 1}, set(), {}, positions={"t-0": (None, "p1")})
    store.commit("f", {"n": 1}, set(), {}, positions={"t-0": ("p1", "p2"), "t-1": (None, "q1")})
    assert store.get_positions("f") == {"t-0": "p2", "t-1": "q1"}
    # A stale expectation (another instance moved on) applies nothing at all.
    with pytest.raises(StateConflict):
        store.commit("f", {"n": 100}, set(), {"v": b"x"}, positions={"t-0": ("p1", "p3")})
    with pytest.raises(StateConflict):
        store.commit("f", {"n": 100}, set(), {}, positions={"t-1": (None, "q2")})
    assert store.get_counter("f", "n") == 2 and store.get_value("f", "v") is None
    assert store.get_positions("f")["t-0"] == "p2" and store.get_positions("other") == {}
    store.close()


def test_unreachable_postgres_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError, match="cannot connect"):
        open_state_store(f"postgresql://nobody@/db?host={tmp_path}&connect_timeout=1")


def test_durable_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStateStore(path)
    store.commit("f", {"n": 7}, set(), {})
    store.close()
    assert SqliteStateStore(path).get_counter("f", "n") == 7


def test_unsupported_store_url() -> None:
    with pytest.raises(ValueError, match="expected sqlite:///path or postgresql://"):
        open_state_store("redis://x")


def test_secrets_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "from-env")
    monkeypatch.setenv("OTHER_VAR", "other")
    assert make_secrets_provider(None).provide_secret("API_KEY", "the-value") == "the-value"
    env = make_secrets_provider("env")
    assert env.provide_secret("API_KEY", "ignored") == "from-env"
    assert env.provide_secret("x", {"env": "OTHER_VAR"}) == "other"
    (tmp_path / "tok").write_text("s3cret\n")
    (tmp_path / "all.json").write_text('{"db": "pw"}')
    files = make_secrets_provider("file")
    assert files.provide_secret("tok", str(tmp_path / "tok")) == "s3cret"
    assert files.provide_secret("db", {"path": str(tmp_path / "all.json"), "key": "db"}) == "pw"
    assert files.provide_secret("db", str(tmp_path / "absent")) is None
    assert make_secrets_provider("secretsprovider.ClearTextSecretsProvider").provide_secret("a", "b") == "b"
