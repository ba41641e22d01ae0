"""Sinks' ``--transform-function``: a Python function applied to each record before the sink writes it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.cli.connectors_cmd import build_runner
from engine.cli.main import build_parser
from engine.config.errors import ConfigError
from engine.io.transform import transform_of
from tests.cluster.conftest import new_cluster, rest
from tests.io.conftest import consume, produce, topic, wait_until
from tests.packaging_helpers import make_zip

SHOUT = '''
from pulsar import Function


class Shout(Function):
    """Upper-cases a line and adds the configured suffix; drops "skip"; fails on "boom"."""

    def process(self, value, context):
        text = value  # the sink's default SerDe hands over text
        if text == "skip":
            return None
        if text == "boom":
            raise ValueError("no booms here")
        return text.upper() + context.get_user_config_value("suffix")
'''

ROWS = '''
import json


def scale(value):
    """Doubles a row's score; drops rows whose id is odd."""
    row = json.loads(value)
    if row["id"] % 2:
        return None
    row["score"] *= 2
    return row
'''


def test_localrun_sink_writes_what_the_transform_function_returns(
    run_connector: Any, client: pulsar.Client, tmp_path: Path
) -> None:
    (tmp_path / "shout.py").write_text(SHOUT)
    src, dlq, out = topic(), topic(), tmp_path / "out"
    runner = run_connector(
        "sinks",
        "localrun",
        "--sink-type",
        "file",
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
        orjson.dumps({"outputDirectory": str(out), "fileName": "o.txt"}).decode(),
        "--transform-function",
        str(tmp_path / "shout.py"),
        "--transform-function-classname",
        "shout.Shout",
        "--transform-function-config",
        '{"suffix": "!"}',
    )
    # One entry per message: a failed record's redelivery then brings back that record alone.
    produce(client, src, [b"one", b"skip", b"boom", b"two"], batching=False)
    dead = consume(client, dlq, 1)
    assert [m.data() for m in dead] == [b"boom"], [dict(m.properties()) for m in dead]
    assert "no booms here" in dead[0].properties()["__pfn_error__"]
    sink = runner.instances[0]
    # "skip" was dropped by the function: it counts as written, and its input is acknowledged.
    assert wait_until(lambda: sink.sink_stats.written == 3), sink.status()
    assert (out / "o.txt").read_text().splitlines() == ["ONE!", "TWO!"]


def test_transform_config_errors_name_the_key(broker: EmbeddedBroker, tmp_path: Path) -> None:
    def error_of(config: dict[str, Any]) -> str:
        with pytest.raises(ConfigError) as err:
            transform_of(config)
        return str(err.value)

    assert "transformFunctionClassName" in error_of({"transformFunction": "/x/f.py"})
    assert "transformFunctionConfig" in error_of(
        {"transformFunctionClassName": "m.f", "transformFunctionConfig": "{"}
    )
    assert "transformFunctionConfig" in error_of(
        {"transformFunctionClassName": "m.f", "transformFunctionConfig": "[1]"}
    )
    assert "transformFunction" in error_of(
        {"transformFunction": "f.jar", "transformFunctionClassName": "m.f"}
    )
    assert transform_of({"sinkType": "file"}) is None
    args = build_parser().parse_args(
        [
            "sinks",
            "localrun",
            "--sink-type",
            "file",
            "--inputs",
            topic(),
            "--sink-config",
            orjson.dumps({"outputDirectory": str(tmp_path)}).decode(),
            "--transform-function",
            str(tmp_path / "absent.py"),
            "--transform-function-classname",
            "absent.f",
            "--broker-url",
            broker.url,
            "--data-dir",
            str(tmp_path / "d"),
        ]
    )
    runner = build_runner(args)
    with pytest.raises(ConfigError) as err:
        runner.prepare()
    assert "transformFunction" in str(err.value)


def _create(base: str, fqfn: str, config: dict[str, Any], method: str = "POST") -> tuple[int, Any]:
    async def post() -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("sinkConfig", orjson.dumps(config).decode(), content_type="application/json")
        async with aiohttp.ClientSession() as session:
            async with session.request(method, f"{base}/admin/v3/sinks/{fqfn}", data=form) as resp:
                return resp.status, await resp.json(content_type=None)

    return asyncio.run(post())


def test_rest_sink_with_a_zip_transform_function_effectively_once(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    package = make_zip(str(tmp_path / "rows.zip"), {"rows.py": ROWS})
    db = tmp_path / "rows.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, score REAL)")
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1)
    try:
        w = cluster.workers[0].url
        ns = cluster.namespace + "-user"
        src = f"persistent://{ns}/rows-in"
        config = {
            "sinkType": "jdbc-sqlite",
            "inputs": [src],
            "processingGuarantees": "EFFECTIVELY_ONCE",
            "sourceSubscriptionPosition": "Earliest",
            "configs": {"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "rows"},
            "transformFunction": package,
            "transformFunctionClassName": "rows.scale",
        }
        status, body = _create(w, f"{ns}/bad", {**config, "transformFunction": str(tmp_path / "no.zip")})
        assert status == 400 and "transformFunction" in body["reason"], body
        status, body = _create(w, f"{ns}/rows", config)
        assert status == 200, body
        got = rest(w, "GET", f"/admin/v3/sinks/{ns}/rows")
        assert got["transformFunction"] == package and got["transformFunctionClassName"] == "rows.scale"
        produce(client, src, [orjson.dumps({"id": i, "score": i * 1.5}) for i in range(10)])

        def rows() -> list[tuple[int, float]]:
            with sqlite3.connect(db) as conn:
                return list(conn.execute("SELECT id, score FROM rows ORDER BY id"))

        assert wait_until(lambda: len(rows()) == 5, timeout=60), rows()
        assert rows() == [(i, i * 3.0) for i in range(0, 10, 2)]
        status, body = _create(w, f"{ns}/rows", {"configs": config["configs"]}, method="PUT")
        assert status == 200, body
        got = rest(w, "GET", f"/admin/v3/sinks/{ns}/rows")
        assert got["transformFunction"] == package, got  # an update keeps the transform function
    finally:
        cluster.stop_all()
