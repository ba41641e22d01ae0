"""SQLite state store: the embedded default, one file in the data directory, WAL mode."""

from __future__ import annotations

import os
import sqlite3

from engine.state.connections import PerThreadConnections
from engine.state.store import ProgressUpdate, StateConflict, StateStoreError

__all__ = ["SqliteStateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    ns TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    ns TEXT NOT NULL, part TEXT NOT NULL, progress TEXT NOT NULL, PRIMARY KEY (ns, part)
) WITHOUT ROWID;
"""


class SqliteStateStore:
    """Function state in one SQLite file; one connection per thread.

    Parameters
    ----------
    path
        The database file; its directory is created if needed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        # Private to its owner: SQLite gives the -wal and -shm files the database's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self._conns = PerThreadConnections()
        conn = self._conn()
        conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = self._conns.current()
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StateStoreError(f"cannot open state store {self.path}: {exc}")
            self._conns.adopt(conn)
        return conn

    def get_counter(self, namespace: str, key: str) -> int | None:
        """The counter's value, or ``None`` when it does not exist."""
        try:
            row = (
                self._conn()
                .execute("SELECT value FROM counters WHERE ns = ? AND key = ?", (namespace, key))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise StateStoreError(f"reading counter {key!r}: {exc}")
        return None if row is None else int(row[0])

    def get_value(self, namespace: str, key: str) -> bytes | None:
        """The stored value, or ``None`` when it does not exist."""
        try:
            row = (
                self._conn()
                .execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (namespace, key))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise StateStoreError(f"reading value {key!r}: {exc}")
        return None if row is None else bytes(row[0])

    def get_positions(self, namespace: str) -> dict[str, str]:
        """The committed input progress of every partition."""
        try:
            rows = (
                self._conn()
                .execute("SELECT part, progress FROM positions WHERE ns = ?", (namespace,))
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StateStoreError(f"reading input positions of {namespace}: {exc}")
        return {part: str(progress) for part, progress in rows}

    def _move_positions(
        self, conn: sqlite3.Connection, namespace: str, positions: dict[str, ProgressUpdate]
    ) -> None:
        for part, (expected, new) in sorted(positions.items()):
            if expected is None:
                cur = conn.execute(
                    "INSERT INTO positions (ns, part, progress) VALUES (?, ?, ?) "
                    "ON CONFLICT (ns, part) DO NOTHING",
                    (namespace, part, new),
                )
            else:
                cur = conn.execute(
                    "UPDATE positions SET progress = ? WHERE ns = ? AND part = ? AND progress = ?",
                    (new, namespace, part, expected),
                )
            if cur.rowcount != 1:
                raise StateConflict(f"input position of {part} for {namespace} was moved by another instance")

    def commit(
        self,
        namespace: str,
        deltas: dict[str, int],
        resets: set[str],
        values: dict[str, bytes | None],
        positions: dict[str, ProgressUpdate] | None = None,
    ) -> None:
        """Apply one batch (and move input positions) in one transaction."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if positions:
                    self._move_positions(conn, namespace, positions)
                if resets:
                    conn.executemany(
                        "DELETE FROM counters WHERE ns = ? AND key = ?", [(namespace, k) for k in resets]
                    )
                if deltas:
                    conn.executemany(
                        "INSERT INTO counters (ns, key, value) VALUES (?, ?, ?) "
                        "ON CONFLICT (ns, key) DO UPDATE SET value = value + excluded.value",
                        [(namespace, k, v) for k, v in deltas.items()],
                    )
                if deltas or resets:  # one key space: a counter replaces a value
                    conn.executemany(
                        "DELETE FROM kv WHERE ns = ? AND key = ?",
                        [(namespace, k) for k in {*deltas, *resets}],
                    )
                if values:
                    conn.executemany(
                        "DELETE FROM counters WHERE ns = ? AND key = ?", [(namespace, k) for k in values]
                    )
                    puts = [(namespace, k, v) for k, v in values.items() if v is not None]
                    dels = [(namespace, k) for k, v in values.items() if v is None]
                    if puts:
                        conn.executemany(
                            "INSERT INTO kv (ns, key, value) VALUES (?, ?, ?) "
                            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                            puts,
                        )
                    if dels:
                        conn.executemany("DELETE FROM kv WHERE ns = ? AND key = ?", dels)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StateStoreError(f"committing state of {namespace}: {exc}")

    def delete_namespace(self, namespace: str) -> None:
        """Remove every counter, value and input position of ``namespace``."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("counters", "kv", "positions"):
                    conn.execute(f"DELETE FROM {table} WHERE ns = ?", (namespace,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StateStoreError(f"deleting the state of {namespace}: {exc}")

    def close(self) -> None:
        """Close every connection opened by any thread."""
        self._conns.close_all()
