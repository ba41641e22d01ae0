"""PostgreSQL state store: one database shared by every worker of a cluster.

Each thread keeps its own connection (opened on first use, replaced after it breaks).
A batch is one transaction; counter rows are written in key order so that two
instances adding to the same counters cannot deadlock each other, and any database
error surfaces as :class:`~engine.state.store.StateStoreError`, so the batch that
needed it is retried and never acked.
"""

from __future__ import annotations

from typing import Any

import psycopg

from engine.state.connections import PerThreadConnections
from engine.state.store import ProgressUpdate, StateConflict, StateStoreError

__all__ = ["PostgresStateStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS magnetar_counters (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS magnetar_kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS magnetar_positions (
    ns TEXT NOT NULL, part TEXT NOT NULL, progress TEXT NOT NULL, PRIMARY KEY (ns, part)
);
"""


class PostgresStateStore:
    """Function state in PostgreSQL tables ``magnetar_counters``, ``magnetar_kv``, ``magnetar_positions``.

    Parameters
    ----------
    url
        A libpq connection URL (``postgresql://user:password@host:port/database``).
    connect_timeout
        Seconds to wait for a connection before the operation fails.
    """

    def __init__(self, url: str, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._conns = PerThreadConnections()
        conn = self._conn()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(7243185)")  # workers may start together
                conn.execute(_SCHEMA)
        except psycopg.Error as exc:
            raise StateStoreError(f"cannot prepare state tables in {self._where()}: {exc}")

    def _where(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        return f"PostgreSQL {info.get('host', 'localhost')}/{info.get('dbname', '')}"

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = self._conns.current()
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise StateStoreError(f"cannot connect to the state store ({self._where()}): {exc}")
        return self._conns.adopt(conn)

    def _read(self, sql: str, params: tuple[Any, ...], what: str) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise StateStoreError(f"reading {what} from {self._where()}: {exc}")

    def get_counter(self, namespace: str, key: str) -> int | None:
        """The counter's value, or ``None`` when it does not exist."""
        rows = self._read(
            "SELECT value FROM magnetar_counters WHERE ns = %s AND key = %s",
            (namespace, key),
            f"counter {key!r}",
        )
        return int(rows[0][0]) if rows else None

    def get_value(self, namespace: str, key: str) -> bytes | None:
        """The stored value, or ``None`` when it does not exist."""
        rows = self._read(
            "SELECT value FROM magnetar_kv WHERE ns = %s AND key = %s", (namespace, key), f"value {key!r}"
        )
        return bytes(rows[0][0]) if rows else None

    def get_positions(self, namespace: str) -> dict[str, str]:
        """The committed input progress of every partition."""
        rows = self._read(
            "SELECT part, progress FROM magnetar_positions WHERE ns = %s",
            (namespace,),
            f"input positions of {namespace}",
        )
        return {part: str(progress) for part, progress in rows}

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
            with conn.transaction(), conn.cursor() as cur:
                if positions:
                    self._move_positions(cur, namespace, positions)
                if resets:
                    cur.executemany(
                        "DELETE FROM magnetar_counters WHERE ns = %s AND key = %s",
                        [(namespace, k) for k in sorted(resets)],
                    )
                if deltas:
                    cur.executemany(
                        "INSERT INTO magnetar_counters (ns, key, value) VALUES (%s, %s, %s) "
                        "ON CONFLICT (ns, key) DO UPDATE "
                        "SET value = magnetar_counters.value + EXCLUDED.value",
                        [(namespace, k, deltas[k]) for k in sorted(deltas)],
                    )
                if deltas or resets:  # one key space: a counter replaces a value
                    cur.executemany(
                        "DELETE FROM magnetar_kv WHERE ns = %s AND key = %s",
                        [(namespace, k) for k in sorted({*deltas, *resets})],
                    )
                if values:
                    cur.executemany(
                        "DELETE FROM magnetar_counters WHERE ns = %s AND key = %s",
                        [(namespace, k) for k in sorted(values)],
                    )
                puts = [(namespace, k, v) for k, v in sorted(values.items()) if v is not None]
                dels = [(namespace, k) for k, v in sorted(values.items()) if v is None]
                if puts:
                    cur.executemany(
                        "INSERT INTO magnetar_kv (ns, key, value) VALUES (%s, %s, %s) "
                        "ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value",
                        puts,
                    )
                if dels:
                    cur.executemany("DELETE FROM magnetar_kv WHERE ns = %s AND key = %s", dels)
        except psycopg.Error as exc:
            raise StateStoreError(f"committing state of {namespace} to {self._where()}: {exc}")

    @staticmethod
    def _move_positions(
        cur: psycopg.Cursor[Any], namespace: str, positions: dict[str, ProgressUpdate]
    ) -> None:
        for part, (expected, new) in sorted(positions.items()):
            if expected is None:
                cur.execute(
                    "INSERT INTO magnetar_positions (ns, part, progress) VALUES (%s, %s, %s) "
                    "ON CONFLICT (ns, part) DO NOTHING",
                    (namespace, part, new),
                )
            else:
                cur.execute(
                    "UPDATE magnetar_positions SET progress = %s "
                    "WHERE ns = %s AND part = %s AND progress = %s",
                    (new, namespace, part, expected),
                )
            if cur.rowcount != 1:
                raise StateConflict(f"input position of {part} for {namespace} was moved by another instance")

    def delete_namespace(self, namespace: str) -> None:
        """Remove every counter, value and input position of ``namespace``."""
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                for table in ("magnetar_counters", "magnetar_kv", "magnetar_positions"):
                    cur.execute(f"DELETE FROM {table} WHERE ns = %s", (namespace,))
        except psycopg.Error as exc:
            raise StateStoreError(f"deleting the state of {namespace} in {self._where()}: {exc}")

    def close(self) -> None:
        """Close every connection opened by any thread."""
        self._conns.close_all()
