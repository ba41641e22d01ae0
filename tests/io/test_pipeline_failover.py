"""The done-when pipeline: ``file`` source → a Python function → ``jdbc-postgres`` sink.

Created through the CLI on two worker processes that share their state in PostgreSQL
(the file source's progress and the function's committed input positions live there,
so either worker can take over any component). Lines are appended to the watched file
while the worker that runs the source is SIGKILLed; the table must end with every line,
exactly once under EFFECTIVELY_ONCE (the sink upserts by the line's number, and commits
its input position with the rows), and with none missing under ATLEAST_ONCE.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pulsar
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.io.conftest import consume

EXAMPLE = Path(__file__).resolve().parent / "pipeline_example.py"
LINES = 3000


@pytest.fixture
def pg_cluster(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Cluster]:
    c = new_cluster(
        broker, str(tmp_path_factory.mktemp("pipeline")), 2, ["--state-storage-url", postgres_url]
    )
    yield c
    c.stop_all()


class Appender:
    """Appends ``line-00000`` … to ``path`` on a thread, a few lines at a time."""

    def __init__(self, path: Path, total: int, per_second: int) -> None:
        self.path, self.total, self.per_second = path, total, per_second
        self.written = 0
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        start = time.monotonic()
        with open(self.path, "a", encoding="utf-8") as fh:
            while self.written < self.total:
                chunk = min(50, self.total - self.written)
                fh.write("".join(f"line-{self.written + i:05d}\n" for i in range(chunk)))
                fh.flush()
                self.written += chunk
                ahead = start + self.written / self.per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)  # pacing the writer, not waiting for a condition


def _ok(res: Any) -> None:
    assert res.returncode == 0, res.stderr


def _status(cluster: Cluster, kind: str, fqfn: str) -> dict[str, Any]:
    url = cluster.live()[0].url
    return rest(url, "GET", f"/admin/v3/{kind}/{fqfn}/status", timeout=10)  # type: ignore[no-any-return]


def _running(cluster: Cluster, kind: str, fqfn: str) -> bool:
    return bool(_status(cluster, kind, fqfn)["numRunning"] == 1)


def _owner(cluster: Cluster, kind: str, fqfn: str) -> str:
    return str(_status(cluster, kind, fqfn)["instances"][0]["status"]["workerId"])


def _pipeline(
    cluster: Cluster, client: pulsar.Client, tmp: Path, postgres_url: str, guarantee: str
) -> list[int]:
    """Create the pipeline, append the lines, kill the source's worker; the ids in the table."""
    ns = cluster.namespace + "-user"
    tenant, namespace = ns.split("/")
    tag = uuid.uuid4().hex[:6]
    lines_topic, rows_topic = f"persistent://{ns}/lines-{tag}", f"persistent://{ns}/rows-{tag}"
    inbox = tmp / "inbox"
    inbox.mkdir()
    (inbox / "lines.txt").touch()
    table = f"lines_{tag}"
    upsert = guarantee == "EFFECTIVELY_ONCE"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER{' PRIMARY KEY' if upsert else ''}, line TEXT)")
    ident = ["--tenant", tenant, "--namespace", namespace, "--admin-url", cluster.workers[0].url]
    sink_config: dict[str, Any] = {"jdbcUrl": f"jdbc:{postgres_url}", "tableName": table, "batchSize": 100}
    if upsert:
        sink_config.update(key="id", nonKey="line", insertMode="UPSERT")
    _ok(magnetar(
        "sinks", "create", "--name", "rows", "--sink-type", "jdbc-postgres", "--inputs", rows_topic,
        "--subs-position", "Earliest", "--processing-guarantees", guarantee,
        "--sink-config", orjson.dumps(sink_config).decode(), *ident,
    ))  # fmt: skip
    _ok(magnetar(
        "functions", "create", "--name", "to-row", "--py", str(EXAMPLE),
        "--classname", "pipeline_example.LineToRow", "--inputs", lines_topic, "--output", rows_topic,
        "--subs-position", "Earliest", "--processing-guarantees", guarantee, *ident,
    ))  # fmt: skip
    _ok(magnetar(
        "sources", "create", "--name", "inbox", "--source-type", "file",
        "--destination-topic-name", lines_topic, "--processing-guarantees", guarantee,
        "--source-config", orjson.dumps(
            {"inputDirectory": str(inbox), "keepFile": True, "pollingInterval": 200}
        ).decode(), *ident,
    ))  # fmt: skip
    for kind, name in (("sinks", "rows"), ("functions", "to-row"), ("sources", "inbox")):
        fqfn = f"{ns}/{name}"
        assert wait_until(lambda k=kind, f=fqfn: _running(cluster, k, f), timeout=60), _status(
            cluster, kind, fqfn
        )

    def ids() -> list[int]:
        with psycopg.connect(postgres_url) as conn:
            return [int(r[0]) for r in conn.execute(f"SELECT id FROM {table} ORDER BY id")]

    appender = Appender(inbox / "lines.txt", LINES, per_second=500)
    appender.thread.start()
    assert wait_until(lambda: len(ids()) >= 300, timeout=60), "the pipeline wrote nothing"
    victim_id = _owner(cluster, "sources", f"{ns}/inbox")
    victim = next(w for w in cluster.workers if w.worker_id == victim_id)
    assert appender.written < LINES, "the lines were all written before the kill"
    placed = rest(victim.url, "GET", "/admin/v2/worker/assignments")
    print(f"\n{guarantee}: killing {victim_id}, which runs {sorted(placed.get(victim_id, []))}")
    cluster.kill(victim)
    appender.thread.join()
    assert wait_until(
        lambda: (
            _running(cluster, "sources", f"{ns}/inbox")
            and _owner(cluster, "sources", f"{ns}/inbox") != victim_id
        ),
        timeout=60,
    ), _status(cluster, "sources", f"{ns}/inbox")
    everything = set(range(LINES))
    if not wait_until(lambda: set(ids()) >= everything, timeout=120):
        missing = sorted(everything - set(ids()))
        on_lines = {int(m.data().decode().rsplit("-", 1)[1]) for m in consume(client, lines_topic, 10**6, 10)}
        on_rows = {orjson.loads(m.data())["id"] for m in consume(client, rows_topic, 10**6, 10)}
        raise AssertionError(
            f"{len(missing)} lines missing from the table, first {missing[:10]}; of them "
            f"{len(set(missing) & on_lines)} are on the source's topic and {len(set(missing) & on_rows)} "
            "on the function's output",
            {k: _status(cluster, k, f"{ns}/{n}") for k, n in (("sinks", "rows"), ("sources", "inbox"))},
        )
    return ids()


def test_pipeline_effectively_once_survives_a_worker_sigkill(
    pg_cluster: Cluster, client: pulsar.Client, tmp_path: Path, postgres_url: str
) -> None:
    got = _pipeline(pg_cluster, client, tmp_path, postgres_url, "EFFECTIVELY_ONCE")
    assert got == list(range(LINES))


def test_pipeline_at_least_once_loses_nothing_to_a_worker_sigkill(
    pg_cluster: Cluster, client: pulsar.Client, tmp_path: Path, postgres_url: str
) -> None:
    got = _pipeline(pg_cluster, client, tmp_path, postgres_url, "ATLEAST_ONCE")
    assert set(got) == set(range(LINES)) and len(got) >= LINES
