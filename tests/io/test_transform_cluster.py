"""A sink's transform function on a two-worker cluster runs where it was not uploaded.

The worker that receives ``sinks create`` is drained first, so every instance runs on the
other one. Each sink's transform package reaches that worker through the cluster's
package store: uploaded by the CLI with the sink, named by a ``function://`` package of
the registry, or read from a ``file://`` URL by the receiving worker. Each local file is
deleted once the sink is created, so no worker can read it from disk. Both runtimes: the
instance on a thread of the worker, or in a child process.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pulsar
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.io.conftest import produce
from tests.packaging_helpers import make_zip

SCALE = '''
import json


def scale(value):
    """Multiplies a row's score by the configured factor; drops rows whose id is odd."""
    row = json.loads(value)
    if row["id"] % 2:
        return None
    row["score"] *= {factor}
    return row
'''


def _ok(res: Any) -> None:
    assert res.returncode == 0, res.stderr


def _rows(db: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT id, score FROM rows ORDER BY id"))


def _status(cluster: Cluster, fqfn: str) -> dict[str, Any]:
    return rest(cluster.workers[0].url, "GET", f"/admin/v3/sinks/{fqfn}/status", timeout=10)  # type: ignore[no-any-return]


@pytest.mark.parametrize("runtime", ["thread", "process"])
def test_transform_function_runs_on_the_worker_that_did_not_receive_it(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path, runtime: str
) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 2, ["--runtime", runtime])
    try:
        leader = cluster.leader()
        assert leader is not None
        runner = next(w for w in cluster.workers if w.worker_id == leader["workerId"])
        receiver = next(w for w in cluster.workers if w is not runner)
        rest(runner.url, "PUT", f"/admin/v2/worker/leader/drain?workerId={receiver.worker_id}")
        ns = cluster.namespace + "-user"
        tenant, namespace = ns.split("/")
        ident = ["--tenant", tenant, "--namespace", namespace, "--admin-url", receiver.url]

        registered = Path(make_zip(str(tmp_path / "registered.zip"), {"rowsreg.py": SCALE.format(factor=3)}))
        package = f"function://{ns}/rows@v1"
        _ok(
            magnetar(
                "packages", "upload", package, "--path", str(registered), "--description", "x", *ident[4:]
            )
        )
        registered.unlink()
        sources = {
            "uploaded": (
                make_zip(str(tmp_path / "uploaded.zip"), {"rowsup.py": SCALE.format(factor=2)}),
                "rowsup",
            ),
            "registered": (package, "rowsreg"),
            "onworker": (str(tmp_path / "onworker.py"), "onworker"),
        }
        (tmp_path / "onworker.py").write_text(SCALE.format(factor=5))
        factors = {"uploaded": 2, "registered": 3, "onworker": 5}
        for name, (where, module) in sources.items():
            db = tmp_path / f"{name}.db"
            with sqlite3.connect(db) as conn:
                conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, score REAL)")
            transform = f"file://{where}" if name == "onworker" else where
            _ok(magnetar(
                "sinks", "create", "--name", name, "--sink-type", "jdbc-sqlite",
                "--inputs", f"persistent://{ns}/{name}-in", "--subs-position", "Earliest",
                "--sink-config", orjson.dumps({"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "rows"}).decode(),
                "--transform-function", transform,
                "--transform-function-classname", f"{module}.scale", *ident,
            ))  # fmt: skip
            if name != "registered":
                Path(where).unlink()  # from here on only the package store has it
        got = rest(receiver.url, "GET", f"/admin/v3/sinks/{ns}/uploaded")
        assert got["transformFunction"] == "uploaded.zip", got
        got = rest(receiver.url, "GET", f"/admin/v3/sinks/{ns}/registered")
        assert got["transformFunction"] == package, got
        for name in sources:
            fqfn = f"{ns}/{name}"
            assert wait_until(lambda f=fqfn: _status(cluster, f)["numRunning"] == 1, timeout=60), _status(
                cluster, fqfn
            )
            owner = _status(cluster, fqfn)["instances"][0]["status"]["workerId"]
            assert owner == runner.worker_id != receiver.worker_id
            produce(
                client,
                f"persistent://{ns}/{name}-in",
                [orjson.dumps({"id": i, "score": i * 1.5}) for i in range(10)],
            )
        for name, factor in factors.items():
            db = tmp_path / f"{name}.db"
            expected = [(i, i * 1.5 * factor) for i in range(0, 10, 2)]
            assert wait_until(lambda d=db, e=expected: _rows(d) == e, timeout=60), (
                name,
                _rows(db),
                _status(cluster, f"{ns}/{name}"),
            )
        # An update that leaves the transform function out keeps its stored package.
        db = tmp_path / "uploaded.db"
        updated = {"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "rows", "batchSize": 3}
        _ok(magnetar(
            "sinks", "update", "--name", "uploaded", "--sink-config", orjson.dumps(updated).decode(), *ident
        ))  # fmt: skip
        got = rest(receiver.url, "GET", f"/admin/v3/sinks/{ns}/uploaded")
        assert got["configs"]["batchSize"] == 3 and got["transformFunction"] == "uploaded.zip", got
        produce(
            client,
            f"persistent://{ns}/uploaded-in",
            [orjson.dumps({"id": i, "score": 1.0}) for i in range(10, 14)],
        )
        expected = [(i, i * 1.5 * 2) for i in range(0, 10, 2)] + [(10, 2.0), (12, 2.0)]
        assert wait_until(lambda: _rows(db) == expected, timeout=60), (
            _rows(db),
            _status(cluster, f"{ns}/uploaded"),
        )
    finally:
        cluster.stop_all()


def test_transform_package_that_cannot_be_had_is_refused_naming_the_key(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1)
    (tmp_path / "t.jar").write_bytes(b"PK")
    try:
        w = cluster.workers[0]
        ns = cluster.namespace + "-user"
        tenant, namespace = ns.split("/")
        base = [
            "sinks", "create", "--sink-type", "file", "--inputs", f"persistent://{ns}/x",
            "--sink-config", orjson.dumps({"outputDirectory": str(tmp_path / "out")}).decode(),
            "--transform-function-classname", "m.f",
            "--tenant", tenant, "--namespace", namespace, "--admin-url", w.url,
        ]  # fmt: skip
        for name, transform, why in (
            ("nofile", f"file://{tmp_path}/absent.py", "no such file on the worker"),
            ("noreg", f"function://{ns}/absent@v1", "transformFunction"),
            ("builtin", "builtin://transforms", "no built-in functions"),
            ("jar", str(tmp_path / "t.jar"), "transformFunction"),
        ):
            res = magnetar(*base, "--name", name, "--transform-function", transform)
            assert res.returncode != 0 and "transformFunction" in res.stderr and why in res.stderr, (
                name,
                res.stderr,
            )
    finally:
        cluster.stop_all()
