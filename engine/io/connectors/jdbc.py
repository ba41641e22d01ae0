"""``jdbc-sqlite`` and ``jdbc-postgres``: sinks that insert or upsert JSON or AVRO records into a table.

Config keys (Apache's names): ``jdbcUrl`` (``jdbc:sqlite:/path.db`` or
``jdbc:postgresql://host:port/db``; the URL without ``jdbc:`` works too), ``userName``,
``password``, ``tableName`` (required), ``key`` and ``nonKey`` (comma-separated columns;
default: every column of the table), ``insertMode`` (``INSERT``, ``UPSERT`` on the key,
``UPDATE`` by the key), ``batchSize`` (records per transaction, default 200),
``timeoutMs`` (the longest a record waits for its batch to fill, default 500),
``nullValueAction`` (``NULL``, the default, writes NULL for a field the record lacks;
``FAIL`` fails such a record).

Each record is a JSON object, or an AVRO record (an input with ``schemaType: AVRO``,
decoded with its writer's schema, :mod:`engine.io.avro_inputs`), whose fields are the
columns. A record that cannot be a row (not an object, no value for a ``key`` column)
fails alone with :class:`InvalidRecord` (retried, then dead-lettered). As in Apache's
JDBC sink, records are gathered into transactions of ``batchSize`` rows, whatever the
size of the batches the sink is handed, and written on a flusher thread
(:mod:`engine.io.connectors.batcher`); each is one ``executemany`` (on PostgreSQL in
``INSERT`` mode one ``COPY``). EFFECTIVELY_ONCE commits each received batch's rows and
the sink's input progress (table ``magnetar_sink_progress``) in one transaction.
A database that cannot be reached fails the batch (retried, never acked); the reason is
in the sink's status.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from engine.io.api import SinkRecord, TransactionalSink
from engine.io.config import ConnectorConfig
from engine.io.connectors.batcher import RecordBatcher
from engine.state.store import StateConflict

__all__ = ["InvalidRecord", "JdbcSink", "PostgresSink", "SqliteSink"]

log = logging.getLogger(__name__)

PROGRESS_TABLE = "magnetar_sink_progress"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_table(name: str) -> str:
    return ".".join(_quote(part) for part in name.split("."))


class JdbcSink(TransactionalSink):
    """What both JDBC sinks share; a subclass connects and names its placeholder."""

    placeholder = "?"
    scheme = ""

    def open(self, config: dict[str, Any], context: Any) -> None:
        cfg = ConnectorConfig(config, "sinkConfig")
        self.url = cfg.string("jdbcUrl", required=True) or ""
        self.user = cfg.string("userName", None)
        self.password = cfg.string("password", None)
        self.table = cfg.string("tableName", required=True) or ""
        self.key = cfg.names("key")
        self.non_key = cfg.names("nonKey")
        self.mode = cfg.choice("insertMode", "INSERT", ("INSERT", "UPSERT", "UPDATE"))
        self.batch_size = cfg.integer("batchSize", 200, minimum=1)
        self.null_action = cfg.choice("nullValueAction", "NULL", ("NULL", "FAIL"))
        self.timeout_ms = cfg.integer("timeoutMs", 500, minimum=1)
        if self.url and not self._accepts(self.url):
            cfg._bad("jdbcUrl", self.url, f"a {self.scheme} URL such as {self.example}")
        if self.mode in ("UPSERT", "UPDATE") and not self.key:
            cfg._bad("key", None, f"the key columns, required for insertMode {self.mode}")
        cfg.check()
        self.batcher = RecordBatcher(
            self.batch_size, self.timeout_ms / 1000.0, self._write_batch, f"{self.scheme}-sink-flush"
        )
        self.conn: Any = None
        self.columns: list[str] = []
        self.sql = ""

    example = ""

    def _accepts(self, url: str) -> bool:
        raise NotImplementedError

    def _connect(self) -> Any:
        raise NotImplementedError

    def _table_columns(self, cur: Any) -> list[str]:
        raise NotImplementedError

    # -- connection ------------------------------------------------------------------------------
    def _ready(self) -> Any:
        """The connection, opened (and the statement prepared) on first use."""
        if self.conn is not None:
            return self.conn
        conn = self._connect()
        try:
            cur = conn.cursor()
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} "
                "(sink TEXT NOT NULL, topic TEXT NOT NULL, progress TEXT NOT NULL, PRIMARY KEY (sink, topic))"
            )
            table_columns = self._table_columns(cur)
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not table_columns:
            conn.close()
            raise LookupError(f"table {self.table!r} does not exist (sinkConfig.tableName)")
        given = self.key + self.non_key
        missing = [c for c in given if c not in table_columns]
        if missing:
            conn.close()
            raise LookupError(
                f"table {self.table!r} has no column {', '.join(missing)} (sinkConfig.key/nonKey)"
            )
        if not given:
            self.columns = table_columns
            self.key = self.key or []
            self.non_key = [c for c in table_columns if c not in self.key]
        else:
            self.columns = (self.key + self.non_key) if self.non_key else given
            if not self.non_key:
                self.non_key = [c for c in table_columns if c not in self.key]
                self.columns = self.key + self.non_key
        self.sql, self.order = self._statement()
        self.conn = conn
        return conn

    def _statement(self) -> tuple[str, list[str]]:
        p, table = self.placeholder, _quote_table(self.table)
        if self.mode == "UPDATE":
            sets = ", ".join(f"{_quote(c)} = {p}" for c in self.non_key)
            where = " AND ".join(f"{_quote(c)} = {p}" for c in self.key)
            return f"UPDATE {table} SET {sets} WHERE {where}", self.non_key + self.key
        cols = ", ".join(_quote(c) for c in self.columns)
        values = ", ".join(p for _ in self.columns)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({values})"
        if self.mode == "UPSERT":
            conflict = ", ".join(_quote(c) for c in self.key)
            updates = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in self.non_key)
            sql += f" ON CONFLICT ({conflict}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
        return sql, self.columns

    def _drop_connection(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # already broken: nothing more to release
                log.debug("closing the %s connection: %s", self.scheme, exc)

    # -- rows --------------------------------------------------------------------------------------
    def _row(self, record: SinkRecord) -> tuple[Any, ...]:
        """The statement's parameters for one record; raises :class:`InvalidRecord`."""
        value = record.value
        if type(value) is not dict:
            value = _fields_of(value, record.data)
        get = value.get
        for column in self.key:
            if get(column) is None:
                raise InvalidRecord(f"the record has no value for the key column {column} (sinkConfig.key)")
        if self.null_action == "FAIL":
            absent = [c for c in self.order if c not in value]
            if absent:
                raise InvalidRecord(f"the record has no field {', '.join(absent)} (nullValueAction FAIL)")
        row = tuple(map(get, self.order))
        if _NESTED.isdisjoint(map(type, row)):
            return row
        return tuple([_column_value(v) for v in row])

    def write(self, records: Sequence[SinkRecord]) -> None:
        """Queue ``records`` for transactions of ``batchSize``, written on the flusher thread."""
        self.batcher.add(records)

    def _write_batch(self, chunk: list[SinkRecord]) -> None:
        """One transaction of rows; every record of ``chunk`` is acked or failed (with why)."""
        try:
            conn = self._ready()
        except Exception as exc:  # unreachable or misconfigured database: every record fails, with why
            self._drop_connection()
            for record in chunk:
                record.fail(f"{self.scheme} {self._where()}: {type(exc).__name__}: {exc}")
            return
        rows: list[tuple[Any, ...]] = []
        good: list[SinkRecord] = []
        row = self._row
        for record in chunk:
            try:
                rows.append(row(record))
                good.append(record)
            except InvalidRecord as exc:
                record.fail(f"InvalidRecord: {exc}")
        if not rows:
            return
        try:
            self._insert(conn.cursor(), rows)
            conn.commit()
        except Exception as exc:  # the batch's transaction failed: its records fail, with why
            self._rollback()
            for record in good:
                record.fail(f"{self.scheme} insert into {self.table} failed: {type(exc).__name__}: {exc}")
            return
        for record in good:
            record.ack()

    def _insert(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """Write ``rows`` in the open transaction (a subclass may write them faster)."""
        cur.executemany(self.sql, rows)

    def _rollback(self) -> None:
        try:
            self.conn.rollback()
        except Exception as exc:  # the connection is gone: reconnect on the next batch
            log.debug("rollback failed: %s", exc)
            self._drop_connection()

    def _where(self) -> str:
        return self.url.split("@")[-1]

    # -- EFFECTIVELY_ONCE ----------------------------------------------------------------------------
    def committed_progress(self, sink_name: str) -> dict[str, str]:
        conn = self._ready()
        cur = conn.cursor()
        p = self.placeholder
        cur.execute(f"SELECT topic, progress FROM {PROGRESS_TABLE} WHERE sink = {p}", (sink_name,))
        result = {str(t): str(v) for t, v in cur.fetchall()}
        conn.commit()
        return result

    def write_with_progress(
        self, records: Sequence[SinkRecord], sink_name: str, progress: dict[str, tuple[str | None, str]]
    ) -> None:
        try:
            conn = self._ready()
        except Exception:
            self._drop_connection()
            raise
        rows = [self._row(r) for r in records]
        p = self.placeholder
        try:
            cur = conn.cursor()
            if rows:
                self._insert(cur, rows)
            for topic, (old, new) in progress.items():
                if old is None:
                    cur.execute(
                        f"INSERT INTO {PROGRESS_TABLE} (sink, topic, progress) VALUES ({p}, {p}, {p}) "
                        "ON CONFLICT (sink, topic) DO NOTHING",
                        (sink_name, topic, new),
                    )
                else:
                    cur.execute(
                        f"UPDATE {PROGRESS_TABLE} SET progress = {p} WHERE sink = {p} AND topic = {p} "
                        f"AND progress = {p}",
                        (new, sink_name, topic, old),
                    )
                if cur.rowcount != 1:
                    raise StateConflict(
                        f"the progress of {topic} was moved by another instance of {sink_name}"
                    )
            conn.commit()
        except BaseException:
            self._rollback()
            raise

    def close(self) -> None:
        batcher = getattr(self, "batcher", None)
        if batcher is not None:
            batcher.close()
        self._drop_connection()


class InvalidRecord(ValueError):
    """A record that cannot be a row: not an object of columns, or without a key column's value."""


def _fields_of(value: Any, data: bytes) -> dict[str, Any]:
    """The fields of a record that is not a dict already: a mapping, else its payload as JSON."""
    if isinstance(value, dict):
        return value
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"the record is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRecord(f"the record is JSON {type(value).__name__}, not an object of columns")
    return value


#: Field types written as JSON text (a nested object or array goes into one column).
_NESTED = frozenset((dict, list))


def _column_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return value


class SqliteSink(JdbcSink):
    """``jdbc-sqlite``: rows into an SQLite database file."""

    scheme = "sqlite"
    example = "jdbc:sqlite:/var/data/sink.db"

    def _accepts(self, url: str) -> bool:
        return url.startswith(("jdbc:sqlite:", "sqlite:"))

    def _path(self) -> str:
        url = self.url.removeprefix("jdbc:").removeprefix("sqlite:")
        return url[2:] if url.startswith("//") else url

    def _connect(self) -> Any:
        conn = sqlite3.connect(self._path(), timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _table_columns(self, cur: Any) -> list[str]:
        cur.execute(f"PRAGMA table_info({_quote(self.table)})")
        return [str(row[1]) for row in cur.fetchall()]

    def _where(self) -> str:
        return self._path()


class PostgresSink(JdbcSink):
    """``jdbc-postgres``: rows into a PostgreSQL table (psycopg)."""

    placeholder = "%s"
    scheme = "postgresql"
    example = "jdbc:postgresql://localhost:5432/db"

    def _accepts(self, url: str) -> bool:
        return url.startswith(("jdbc:postgresql://", "postgresql://", "postgres://"))

    def _insert(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """``INSERT`` mode: one ``COPY`` of the rows (the same transaction; a bad row fails it all)."""
        if self.mode != "INSERT":
            cur.executemany(self.sql, rows)
            return
        cols = ", ".join(_quote(c) for c in self.order)
        with cur.copy(f"COPY {_quote_table(self.table)} ({cols}) FROM STDIN") as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def _connect(self) -> Any:
        import psycopg

        kwargs: dict[str, Any] = {"connect_timeout": 10}
        if self.user:
            kwargs["user"] = self.user
        if self.password:
            kwargs["password"] = self.password
        return psycopg.connect(self.url.removeprefix("jdbc:"), **kwargs)

    def _table_columns(self, cur: Any) -> list[str]:
        schema, _, table = self.table.rpartition(".")
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = COALESCE(NULLIF(%s, ''), current_schema()) ORDER BY ordinal_position",
            (table, schema),
        )
        return [str(row[0]) for row in cur.fetchall()]
