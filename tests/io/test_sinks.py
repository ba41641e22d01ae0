"""Built-in sinks against the real thing: files, SQLite, the PostgreSQL fixture, a local aiohttp server."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pulsar
import pytest
from aiohttp import web

from tests.io.conftest import consume, produce, topic, wait_until


def _rows(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"id": i, "name": f"n{i}", "score": i * 1.5}) for i in range(start, start + n)]


def test_file_sink_appends_lines_and_rotates_by_size(
    run_connector, client: pulsar.Client, tmp_path: Path
) -> None:
    src = topic()
    out = tmp_path / "out"
    runner = run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "file",
        "--name",
        "files",
        "--inputs",
        src,
        "--subs-position",
        "Earliest",
        "--sink-config",
        orjson.dumps({"outputDirectory": str(out), "fileName": "o.txt", "maxFileSize": 400}).decode(),
    )
    produce(client, src, [f"line-{i:03d}".encode() for i in range(200)])
    status = wait_until(lambda: runner.instances[0].sink_stats.written == 200)
    assert status
    files = list(out.iterdir())
    rotated = sorted((p for p in out.iterdir() if p.name != "o.txt"), key=lambda p: int(p.suffix[1:]))
    assert len(rotated) >= 4 and all(p.stat().st_size <= 400 for p in files)
    lines = "".join(p.read_text() for p in [*rotated, out / "o.txt"]).splitlines()
    assert lines == [f"line-{i:03d}" for i in range(200)]
    assert (out / "o.txt").stat().st_mode & 0o777 == 0o600


def test_jdbc_sqlite_upserts_by_key(run_connector, client: pulsar.Client, tmp_path: Path) -> None:
    db = tmp_path / "sink.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    src = topic()
    runner = run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "jdbc-sqlite",
        "--inputs",
        src,
        "--subs-position",
        "Earliest",
        "--sink-config",
        orjson.dumps(
            {
                "jdbcUrl": f"jdbc:sqlite:{db}",
                "tableName": "people",
                "key": "id",
                "nonKey": "name,score",
                "insertMode": "UPSERT",
                "batchSize": 7,
            }
        ).decode(),
    )
    produce(client, src, _rows(30))
    produce(client, src, [orjson.dumps({"id": i, "name": f"new{i}", "score": 0.0}) for i in range(10)])
    assert wait_until(lambda: runner.instances[0].sink_stats.written == 40)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, name, score FROM people ORDER BY id").fetchall()
    assert rows == [(i, f"new{i}", 0.0) for i in range(10)] + [(i, f"n{i}", i * 1.5) for i in range(10, 30)]


def test_jdbc_sink_fails_records_that_are_not_json_objects(
    run_connector, client: pulsar.Client, tmp_path: Path
) -> None:
    db = tmp_path / "sink.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT)")
    src, dlq = topic(), topic()
    runner = run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "jdbc-sqlite",
        "--inputs",
        src,
        "--subs-position",
        "Earliest",
        "--max-redeliver-count",
        "1",
        "--dead-letter-topic",
        dlq,
        "--negative-ack-redelivery-delay-ms",
        "100",
        "--sink-config",
        orjson.dumps({"jdbcUrl": f"sqlite:///{db}", "tableName": "t"}).decode(),
    )
    # One entry per message: a batch entry with a failed message is redelivered whole.
    produce(client, src, [b'{"id": 1, "name": "a"}', b"not json", b'{"id": 2, "name": "b"}'], batching=False)
    dead = consume(client, dlq, 1)
    assert [m.data() for m in dead] == [b"not json"]
    assert "not JSON" in dead[0].properties()["__pfn_error__"]
    assert wait_until(lambda: runner.instances[0].sink_stats.written == 2)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, name FROM t ORDER BY id").fetchall() == [(1, "a"), (2, "b")]


def test_jdbc_postgres_inserts_in_batches(run_connector, client: pulsar.Client, postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id INTEGER, name TEXT, score DOUBLE PRECISION)")
    src = topic()
    runner = run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "jdbc-postgres",
        "--inputs",
        src,
        "--subs-position",
        "Earliest",
        "--sink-config",
        orjson.dumps({"jdbcUrl": f"jdbc:{postgres_url}", "tableName": "people", "batchSize": 50}).decode(),
    )
    produce(client, src, _rows(500))
    assert wait_until(lambda: runner.instances[0].sink_stats.written == 500)
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT id, name, score FROM people ORDER BY id").fetchall()
    assert rows == [(i, f"n{i}", i * 1.5) for i in range(500)]


def test_unreachable_postgres_fails_batches_and_says_why(run_connector, client: pulsar.Client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = topic()
    runner = run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "jdbc-postgres",
        "--inputs",
        src,
        "--subs-position",
        "Earliest",
        "--negative-ack-redelivery-delay-ms",
        "100",
        "--sink-config",
        orjson.dumps({"jdbcUrl": f"jdbc:postgresql://127.0.0.1:{port}/db", "tableName": "t"}).decode(),
    )
    produce(client, src, _rows(3))
    status = wait_until(
        lambda: (s := runner.status()["instances"][0]["status"])["numSinkExceptions"] >= 6 and s
    )
    assert status["numWrittenToSink"] == 0
    assert str(port) in status["latestSinkExceptions"][0]["exceptionString"]
    # Never acked: the broker hands the same inputs out again and again.
    assert status["numReadFromPulsar"] >= 6


def test_jdbc_postgres_effectively_once_survives_restarts(
    run_connector, client: pulsar.Client, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE events (id INTEGER, name TEXT, score DOUBLE PRECISION)"
        )  # no key: repeats show
    src = topic()
    config = orjson.dumps({"jdbcUrl": postgres_url, "tableName": "events", "batchSize": 100}).decode()
    args = (
        "sinks",
        "localrun",
        "--sink-type",
        "jdbc-postgres",
        "--name",
        "eo",
        "--inputs",
        src,
        "--processing-guarantees",
        "EFFECTIVELY_ONCE",
        "--subs-position",
        "Earliest",
        "--batch-max-messages",
        "50",
        "--sink-config",
        config,
    )

    def count() -> int:
        with psycopg.connect(postgres_url) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

    first = run_connector(*args)
    feeder_errors: list[BaseException] = []

    def feed() -> None:
        try:
            produce(client, src, _rows(3000))
        except BaseException as exc:  # handed to the test thread, which fails on it
            feeder_errors.append(exc)

    feeder = threading.Thread(target=feed)
    feeder.start()
    assert wait_until(lambda: count() > 0)
    first.stop()  # mid-stream
    stopped_at = count()
    feeder.join()
    assert not feeder_errors, feeder_errors
    assert stopped_at < 3000
    second = run_connector(*args)
    assert wait_until(lambda: count() == 3000, timeout=60), (
        count(),
        second.status()["instances"][0]["status"],
        second.instances[0].settlement.inputs_read_back,
        type(second.instances[0].settlement.gaps).__name__,
        {t: (p.mark, len(p.above)) for t, p in second.instances[0].settlement.progress.items()},
        second.spec.subscription_type,
    )
    second.stop()
    # The same sink read from the start by a new subscription: the committed progress drops every repeat.
    third = run_connector(*args, "--subs-name", "replay")
    assert wait_until(lambda: third.instances[0].settlement.duplicates_dropped == 3000, timeout=60)
    with psycopg.connect(postgres_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id").fetchall()]
    assert ids == list(range(3000))


@pytest.fixture
def http_server() -> Iterator[dict[str, Any]]:
    """A real aiohttp server that fails the first ``fail_first`` POSTs with 503, recording the rest."""
    state: dict[str, Any] = {"fail_first": 0, "attempts": 0, "bodies": []}
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def handle(request: web.Request) -> web.Response:
        state["attempts"] += 1
        body = await request.json()
        if state["attempts"] <= state["fail_first"]:
            return web.Response(status=503)
        state["bodies"].append(body)
        return web.json_response({"ok": True})

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
        state["runner"] = runner
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    started.wait(10)
    yield state
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_http_sink_retries_with_backoff(
    run_connector, client: pulsar.Client, http_server: dict[str, Any]
) -> None:
    http_server["fail_first"] = 2
    src = topic()
    runner = run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "http",
        "--inputs",
        src,
        "--subs-position",
        "Earliest",
        "--sink-config",
        orjson.dumps({"url": http_server["url"], "maxRetries": 3, "backoffMs": 20}).decode(),
    )
    produce(client, src, _rows(20), key="k")
    assert wait_until(lambda: runner.instances[0].sink_stats.written == 20)
    sent = [item for body in http_server["bodies"] for item in body]
    assert [item["value"]["id"] for item in sent] == list(range(20))
    assert sent[0]["key"] == "k" and http_server["attempts"] >= 3


def test_http_sink_dead_letters_what_keeps_failing(
    run_connector, client: pulsar.Client, http_server: dict[str, Any]
) -> None:
    http_server["fail_first"] = 10**9
    src, dlq = topic(), topic()
    run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "http",
        "--inputs",
        src,
        "--subs-position",
        "Earliest",
        "--max-redeliver-count",
        "2",
        "--dead-letter-topic",
        dlq,
        "--negative-ack-redelivery-delay-ms",
        "100",
        "--sink-config",
        orjson.dumps({"url": http_server["url"], "maxRetries": 1, "backoffMs": 10}).decode(),
    )
    produce(client, src, _rows(5))
    dead = consume(client, dlq, 5)
    assert sorted(orjson.loads(m.data())["id"] for m in dead) == list(range(5))
    assert "503" in dead[0].properties()["__pfn_error__"]


def test_jdbc_sqlite_effectively_once_reads_back_what_its_subscription_never_delivers(
    run_connector, client: pulsar.Client, tmp_path: Path
) -> None:
    """Past the committed progress, inputs nobody delivers are read back from the topic (pulsar-lite)."""
    db = tmp_path / "eo.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT, score REAL)")
    src = topic()
    config = orjson.dumps({"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "t"}).decode()
    common = (
        "sinks",
        "localrun",
        "--sink-type",
        "jdbc-sqlite",
        "--name",
        "eo-lite",
        "--inputs",
        src,
        "--processing-guarantees",
        "EFFECTIVELY_ONCE",
        "--sink-config",
        config,
    )

    def ids() -> list[int]:
        with sqlite3.connect(db) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")]

    first = run_connector(*common, "--subs-position", "Earliest")
    produce(client, src, _rows(100))
    assert wait_until(lambda: ids() == list(range(100)))
    first.stop()
    produce(client, src, _rows(50, start=100))
    # A new subscription at Latest is never handed the 50: the sink's progress says they are due.
    second = run_connector(*common, "--subs-name", "fresh", "--subs-position", "Latest")
    assert wait_until(lambda: ids() == list(range(150)), timeout=30), ids()
    assert second.instances[0].settlement.inputs_read_back == 50
