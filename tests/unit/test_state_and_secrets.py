"""SQLite state store and secrets providers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.instance.secrets import make_secrets_provider
from engine.state import SqliteStateStore, open_state_store


def test_commit_applies_deltas_resets_and_values(tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "s.db"))
    store.commit("t/n/f", {"a": 5, "b": -2}, set(), {"k": b"v"})
    store.commit("t/n/f", {"a": 3}, {"b"}, {"k": None, "j": b"w"})
    assert store.get_counter("t/n/f", "a") == 8
    assert store.get_counter("t/n/f", "b") is None
    assert store.get_value("t/n/f", "k") is None and store.get_value("t/n/f", "j") == b"w"
    assert store.get_counter("other/n/f", "a") is None
    store.close()


def test_reset_then_increment_in_one_batch(tmp_path: Path) -> None:
    store = open_state_store(f"sqlite:///{tmp_path}/s.db")
    store.commit("f", {"a": 10}, set(), {})
    store.commit("f", {"a": 1}, {"a"}, {})
    assert store.get_counter("f", "a") == 1


def test_concurrent_threads_add_up(tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "s.db"))

    def work() -> None:
        for _ in range(200):
            store.commit("f", {"n": 1}, set(), {})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get_counter("f", "n") == 800
    store.close()


def test_durable_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStateStore(path)
    store.commit("f", {"n": 7}, set(), {})
    store.close()
    assert SqliteStateStore(path).get_counter("f", "n") == 7


def test_unsupported_store_url() -> None:
    with pytest.raises(ValueError, match="expected sqlite:///path"):
        open_state_store("redis://x")


def test_secrets_providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "from-env")
    monkeypatch.setenv("OTHER_VAR", "other")
    env = make_secrets_provider(None)
    assert env.provide_secret("API_KEY", "ignored") == "from-env"
    assert env.provide_secret("x", {"env": "OTHER_VAR"}) == "other"
    (tmp_path / "tok").write_text("s3cret\n")
    (tmp_path / "all.json").write_text('{"db": "pw"}')
    files = make_secrets_provider("file")
    assert files.provide_secret("tok", str(tmp_path / "tok")) == "s3cret"
    assert files.provide_secret("db", {"path": str(tmp_path / "all.json"), "key": "db"}) == "pw"
    assert files.provide_secret("db", str(tmp_path / "absent")) is None
    assert make_secrets_provider("secretsprovider.ClearTextSecretsProvider").provide_secret("a", "b") == "b"
