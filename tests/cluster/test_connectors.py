"""Sources and sinks on a cluster of workers, created through REST as pulsar-admin sends them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import RestError, new_cluster, rest, wait_until


def _create(base: str, kind: str, fqfn: str, config: dict[str, Any], package: Path | None = None) -> Any:
    async def post() -> Any:
        form = aiohttp.FormData()
        form.add_field(f"{kind}Config", orjson.dumps(config).decode(), content_type="application/json")
        if package is not None:
            form.add_field("data", package.read_bytes(), filename=package.name)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/admin/v3/{kind}s/{fqfn}", data=form) as resp:
                return resp.status, await resp.json()

    return asyncio.run(post())


def test_source_and_sink_run_on_the_workers(broker: EmbeddedBroker, tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 2)
    try:
        w = cluster.workers[0].url
        ns = cluster.namespace + "-user"  # never the workers' own (reserved) namespace
        db = tmp_path / "rows.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, name TEXT, value REAL, ts INTEGER)")
        mid = f"persistent://{ns}/generated"
        status, body = _create(
            w,
            "sink",
            f"{ns}/rows",
            {
                "sinkType": "jdbc-sqlite",
                "inputs": [mid],
                "processingGuarantees": "EFFECTIVELY_ONCE",
                "sourceSubscriptionPosition": "Earliest",
                "configs": {"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "rows"},
            },
        )
        assert status == 200, body
        status, body = _create(
            w,
            "source",
            f"{ns}/gen",
            {"sourceType": "data-generator", "topicName": mid, "configs": {"count": 60, "rate": 200}},
        )
        assert status == 200, body

        def ids() -> list[int]:
            with sqlite3.connect(db) as conn:
                return [r[0] for r in conn.execute("SELECT id FROM rows ORDER BY id")]

        assert wait_until(lambda: ids() == list(range(60)), timeout=60), ids()
        sink_status = wait_until(
            lambda: (
                (s := rest(w, "GET", f"/admin/v3/sinks/{ns}/rows/status"))["instances"][0]["status"][
                    "numWrittenToSink"
                ]
                == 60
                and s
            )
        )
        assert sink_status["numRunning"] == 1
        source_status = wait_until(
            lambda: (
                (s := rest(w, "GET", f"/admin/v3/sources/{ns}/gen/status"))["instances"][0]["status"][
                    "numWritten"
                ]
                == 60
                and s
            )
        )
        assert source_status["numRunning"] == 1
        assert rest(w, "GET", f"/admin/v3/sources/{ns}") == ["gen"]
        assert rest(w, "GET", f"/admin/v3/sinks/{ns}") == ["rows"]
        got = rest(w, "GET", f"/admin/v3/sinks/{ns}/rows")
        assert got["sinkType"] == "jdbc-sqlite" and got["inputs"] == [mid]
        assert {c["name"] for c in rest(w, "GET", "/admin/v3/sinks/builtinsinks")} >= {
            "jdbc-postgres",
            "file",
        }
        assert "data-generator" in {c["name"] for c in rest(w, "GET", "/admin/v2/worker/connectors")}
        with pytest.raises(RestError) as err:
            rest(w, "GET", f"/admin/v3/sources/{ns}/rows")  # a sink is not a source
        assert err.value.status == 404
        rest(w, "DELETE", f"/admin/v3/sources/{ns}/gen")
        assert wait_until(lambda: rest(w, "GET", f"/admin/v3/sources/{ns}") == [])
    finally:
        cluster.stop_all()


def test_create_rejects_bad_config_naming_the_field(broker: EmbeddedBroker, tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1)
    try:
        w, ns = cluster.workers[0].url, cluster.namespace + "-user"
        status, body = _create(w, "source", f"{ns}/x", {"sourceType": "no-such", "topicName": "t"})
        assert status == 400 and "sourceType" in body["reason"] and "data-generator" in body["reason"]
        status, body = _create(
            w, "sink", f"{ns}/y", {"sinkType": "file", "inputs": ["in"], "processingGuarantees": "NEVER"}
        )
        assert status == 400 and "processingGuarantees" in body["reason"]
    finally:
        cluster.stop_all()


def test_custom_zip_connectors_through_sources_and_sinks_create(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    from tests.cluster.conftest import magnetar
    from tests.io.test_custom_connectors import SINK, SOURCE
    from tests.packaging_helpers import make_zip

    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 2)
    try:
        w, ns = cluster.workers[1].url, cluster.namespace + "-user"
        tenant, namespace = ns.split("/")
        ident = ["--tenant", tenant, "--namespace", namespace, "--admin-url", w]
        src_zip = make_zip(str(tmp_path / "counter.zip"), {"counter_source/__init__.py": SOURCE})
        sink_zip = make_zip(str(tmp_path / "lines.zip"), {"lines_sink/__init__.py": SINK})
        mid = f"persistent://{ns}/counted"
        out, acks = tmp_path / "out.txt", tmp_path / "acks.txt"
        # The sink's archive is a package of the registry (a URL the worker resolves), the source's a file.
        package = f"sink://{ns}/lines@v1"
        made = magnetar(
            "packages", "upload", package, "--path", sink_zip, "--description", "lines", "--admin-url", w
        )
        assert made.returncode == 0, made.stderr
        made = magnetar(
            "sinks",
            "create",
            "--name",
            "lines",
            "--archive",
            package,
            "--classname",
            "lines_sink.Lines",
            "--inputs",
            mid,
            "--subs-position",
            "Earliest",
            "--schema-type",
            "JSON",
            "--sink-config",
            orjson.dumps({"outFile": str(out)}).decode(),
            *ident,
        )
        assert made.returncode == 0, made.stderr
        made = magnetar(
            "sources",
            "create",
            "--name",
            "counter",
            "--archive",
            src_zip,
            "--classname",
            "counter_source.Counter",
            "--destination-topic-name",
            mid,
            "--schema-type",
            "JSON",
            "--source-config",
            orjson.dumps({"count": 25, "ackFile": str(acks)}).decode(),
            *ident,
        )
        assert made.returncode == 0, made.stderr

        def lines() -> list[str]:
            return out.read_text().splitlines() if out.exists() else []

        assert wait_until(lambda: len(lines()) == 25, timeout=60), lines()
        assert sorted(int(line.split(":")[1]) for line in lines()) == list(range(25))
        listed = magnetar("sources", "list", *ident)
        assert orjson.loads(listed.stdout) == ["counter"]
        status = wait_until(
            lambda: (
                (s := orjson.loads(magnetar("sinks", "status", "--name", "lines", *ident).stdout))[
                    "instances"
                ][0]["status"]["numWrittenToSink"]
                == 25
                and s
            )
        )
        assert status["numRunning"] == 1

        def running() -> int:
            return int(
                orjson.loads(magnetar("sinks", "status", "--name", "lines", *ident).stdout)["numRunning"]
            )

        assert magnetar("sinks", "stop", "--name", "lines", *ident).returncode == 0
        assert wait_until(lambda: running() == 0)
        assert magnetar("sinks", "start", "--name", "lines", *ident).returncode == 0
        assert wait_until(lambda: running() == 1)
        stats = orjson.loads(magnetar("sinks", "stats", "--name", "lines", *ident).stdout)
        assert len(stats["instances"]) == 1
        assert magnetar("sources", "stop", "--name", "lines", *ident).returncode == 1  # a sink, not a source
        assert magnetar("sinks", "delete", "--name", "lines", *ident).returncode == 0
        missing = magnetar("sinks", "get", "--name", "lines", *ident)
        assert missing.returncode == 1 and "404" in missing.stderr
    finally:
        cluster.stop_all()


def test_update_restarts_connectors_where_they_stopped(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from tests.cluster.conftest import magnetar

    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1)
    try:
        w, ns = cluster.workers[0].url, cluster.namespace + "-user"
        tenant, namespace = ns.split("/")
        ident = ["--tenant", tenant, "--namespace", namespace, "--admin-url", w]
        inbox, db = tmp_path / "inbox", tmp_path / "rows.db"
        inbox.mkdir()
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE rows (id INTEGER, name TEXT)")  # no key: a repeat shows
        mid = f"persistent://{ns}/lines"
        sink_config = {"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "rows"}
        made = magnetar(
            "sinks", "create", "--name", "rows", "--sink-type", "jdbc-sqlite", "--inputs", mid,
            "--subs-position", "Earliest", "--processing-guarantees", "EFFECTIVELY_ONCE",
            "--sink-config", orjson.dumps(sink_config).decode(), *ident,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        source_config = {
            "inputDirectory": str(inbox), "keepFile": True, "pollingInterval": 100, "fileFilter": r".*\.txt",
        }  # fmt: skip
        made = magnetar(
            "sources", "create", "--name", "inbox", "--source-type", "file", "--destination-topic-name", mid,
            "--source-config", orjson.dumps(source_config).decode(), *ident,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr

        def ids() -> list[int]:
            with sqlite3.connect(db) as conn:
                return [r[0] for r in conn.execute("SELECT id FROM rows ORDER BY id")]

        def lines(start: int, n: int) -> str:
            return "".join(
                orjson.dumps({"id": i, "name": f"n{i}"}).decode() + "\n" for i in range(start, start + n)
            )

        (inbox / "a.txt").write_text(lines(0, 40))
        (inbox / "b.log").write_text(lines(100, 10))  # not matched by the fileFilter yet
        assert wait_until(lambda: ids() == list(range(40)), timeout=60), ids()
        stored = rest(w, "GET", f"/admin/v3/sources/{ns}/inbox")

        def sink_restarted(before: int) -> bool:
            st = rest(w, "GET", f"/admin/v3/sinks/{ns}/rows/status")
            return bool(st["numRunning"] == 1 and st["instances"][0]["status"]["numReadFromPulsar"] < before)

        src_before = rest(w, "GET", f"/admin/v3/sources/{ns}/inbox/status")["instances"][0]["status"][
            "numReceivedFromSource"
        ]
        wider = r".*\.(txt|log)"
        updated = magnetar(
            "sources", "update", "--name", "inbox",
            "--source-config", orjson.dumps({**source_config, "fileFilter": wider}).decode(), *ident,
        )  # fmt: skip
        assert updated.returncode == 0, updated.stderr
        assert "Updated source" in updated.stderr
        assert rest(w, "GET", f"/admin/v3/sources/{ns}/inbox")["configs"]["fileFilter"] == wider
        assert stored["topicName"] == mid
        # The new filter is live (b.log is read), and a.txt is not read again: its offset was kept.
        assert wait_until(lambda: ids() == [*range(40), *range(100, 110)], timeout=60), ids()
        assert src_before == 40
        sink_before = rest(w, "GET", f"/admin/v3/sinks/{ns}/rows/status")["instances"][0]["status"][
            "numReadFromPulsar"
        ]
        updated = magnetar(
            "sinks", "update", "--name", "rows",
            "--sink-config", orjson.dumps({**sink_config, "batchSize": 7}).decode(), *ident,
        )  # fmt: skip
        assert updated.returncode == 0, updated.stderr
        assert rest(w, "GET", f"/admin/v3/sinks/{ns}/rows")["configs"]["batchSize"] == 7
        assert wait_until(lambda: sink_restarted(sink_before), timeout=60)
        with open(inbox / "a.txt", "a") as fh:
            fh.write(lines(40, 20))
        assert wait_until(lambda: ids() == [*range(60), *range(100, 110)], timeout=60), ids()
        # What an update may not change is refused, naming the field.
        refused = magnetar(
            "sinks", "update", "--name", "rows", "--processing-guarantees", "ATLEAST_ONCE", *ident
        )
        assert refused.returncode == 1 and "processingGuarantees" in refused.stderr, refused.stderr
        refused = magnetar(
            "sources", "update", "--name", "inbox", "--destination-topic-name", "other", *ident
        )
        assert refused.returncode == 1 and "topicName" in refused.stderr, refused.stderr
        missing = magnetar("sinks", "update", "--name", "nope", "--parallelism", "2", *ident)
        assert missing.returncode == 1 and "404" in missing.stderr
        assert magnetar("sources", "reload", "--admin-url", w).returncode == 0
        assert magnetar("sinks", "reload", "--admin-url", w).returncode == 0
    finally:
        cluster.stop_all()


def test_connector_status_under_the_process_runtime(broker: EmbeddedBroker, tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1, ["--runtime", "process"])
    try:
        w, ns = cluster.workers[0].url, cluster.namespace + "-user"
        db = tmp_path / "rows.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, name TEXT, value REAL, ts INTEGER)")
        mid = f"persistent://{ns}/generated"
        status, body = _create(
            w,
            "sink",
            f"{ns}/rows",
            {
                "sinkType": "jdbc-sqlite",
                "inputs": [mid],
                "sourceSubscriptionPosition": "Earliest",
                "configs": {"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "rows"},
            },
        )
        assert status == 200, body
        status, body = _create(
            w,
            "source",
            f"{ns}/gen",
            {"sourceType": "data-generator", "topicName": mid, "configs": {"count": 40, "rate": 200}},
        )
        assert status == 200, body

        def instance(kind: str, name: str) -> dict[str, Any]:
            return rest(w, "GET", f"/admin/v3/{kind}/{ns}/{name}/status")["instances"][0]["status"]  # type: ignore[no-any-return]

        sink = wait_until(
            lambda: (s := instance("sinks", "rows"))["numWrittenToSink"] == 40 and s, timeout=60
        )
        assert sink, (instance("sinks", "rows"), instance("sources", "gen"))
        assert sink["running"] and sink["numReadFromPulsar"] >= 40 and sink["workerId"] == "w1"
        assert sink["lastReceivedTime"] > 0 and "numReceived" not in sink
        source = wait_until(lambda: (s := instance("sources", "gen"))["numWritten"] == 40 and s, timeout=60)
        assert source, instance("sources", "gen")
        assert source["numReceivedFromSource"] == 40 and source["numSourceExceptions"] == 0
    finally:
        cluster.stop_all()
