"""Function state: the store interface and its backends."""

from engine.state.sqlite_store import SqliteStateStore
from engine.state.store import StateStore, StateStoreError

__all__ = ["SqliteStateStore", "StateStore", "StateStoreError", "open_state_store"]


def open_state_store(url: str) -> StateStore:
    """Open the store named by ``url``: ``sqlite:///path/to/file.db`` (or a bare path)."""
    if url.startswith("sqlite:///"):
        return SqliteStateStore(url[len("sqlite://") :])
    if "://" not in url:
        return SqliteStateStore(url)
    raise ValueError(
        f"--state-storage-url {url!r}: expected sqlite:///path (PostgreSQL comes with a later release)"
    )
