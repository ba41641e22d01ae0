"""Function state: the store interface and its backends (SQLite, PostgreSQL)."""

from engine.state.sqlite_store import SqliteStateStore
from engine.state.store import ProgressUpdate, StateConflict, StateStore, StateStoreError

__all__ = [
    "ProgressUpdate",
    "SqliteStateStore",
    "StateConflict",
    "StateStore",
    "StateStoreError",
    "open_state_store",
]


def open_state_store(url: str) -> StateStore:
    """Open the store named by ``url``.

    ``sqlite:///path/to/file.db`` (or a bare path) for SQLite, ``postgresql://…`` (or
    ``postgres://…``) for PostgreSQL.
    """
    if url.startswith("sqlite:///"):
        return SqliteStateStore(url[len("sqlite://") :])
    if url.startswith(("postgresql://", "postgres://")):
        from engine.state.postgres_store import PostgresStateStore

        return PostgresStateStore(url)
    if "://" not in url:
        return SqliteStateStore(url)
    raise ValueError(f"--state-storage-url {url!r}: expected sqlite:///path or postgresql://host/database")
