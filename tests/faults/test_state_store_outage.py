"""The PostgreSQL state store goes away mid-stream, twice, and comes back.

The test owns its PostgreSQL server and stops it (``pg_ctl stop -m immediate``: every
connection is cut) while a producer streams inputs to a stateful function on a real
worker process. While the store is down, batches that need it fail: the instance's
status names the state store, and nothing of those batches is acknowledged. Once the
store is back the function goes on by itself: ATLEAST_ONCE loses none of the inputs
the broker acknowledged, and EFFECTIVELY_ONCE counts each input the topic holds exactly
once (each input has a counter of its own, so a double count or a lost one shows).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pulsar
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.faults.postgres_server import StoppablePostgres
from tests.faults.test_broker_faults import Stream, _messages, _outputs

OUTAGES = 2
EXAMPLE = Path(__file__).resolve().parent / "counted_echo_example.py"


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[StoppablePostgres]:
    server = StoppablePostgres(tmp_path / "pg")
    yield server
    server.close()


def _instance(cluster: Cluster, name: str) -> dict[str, Any]:
    st = rest(cluster.workers[0].url, "GET", f"/admin/v3/functions/public/default/{name}/status", timeout=10)
    return st["instances"][0]["status"]  # type: ignore[no-any-return]


def _counters(url: str, fqfn: str) -> dict[str, int]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT key, value FROM magnetar_counters WHERE ns = %s", (fqfn,)).fetchall()
    return {str(k): int(v) for k, v in rows}


def _store_named(instance: dict[str, Any], since_ms: int) -> str:
    """A system exception since ``since_ms`` that says a state commit failed in PostgreSQL, else ''."""
    for exc in instance.get("latestSystemExceptions", []):
        text = str(exc.get("exceptionString", ""))
        if exc.get("timestampMs", 0) >= since_ms and "state commit failed" in text and "PostgreSQL" in text:
            return text
    return ""


def _logged(root: Path, text: str) -> int:
    """How many lines of the worker's and the instances' logs under ``root`` hold ``text``."""
    return sum(
        line.count(text)
        for log in root.rglob("*.log")
        for line in log.read_text(errors="replace").splitlines()
    )


def _stream_with_outages(
    cluster: Cluster, name: str, stream: Stream, postgres: StoppablePostgres, url: str
) -> list[str]:
    """Stop and start the store :data:`OUTAGES` times while ``stream`` runs; the causes status gave."""
    fqfn = f"public/default/{name}"
    causes: list[str] = []

    def sent_more(n: int) -> Any:
        floor = len(stream.acked) + n
        return lambda: len(stream.acked) >= floor

    for _ in range(OUTAGES):
        assert wait_until(sent_more(300), timeout=30), "the stream stalled"
        since_ms = int(time.time() * 1000)
        postgres.stop()
        cause = wait_until(lambda t=since_ms: _store_named(_instance(cluster, name), t), timeout=30)
        assert cause, f"status does not name the store: {_instance(cluster, name)}"
        causes.append(cause)
        assert wait_until(sent_more(300), timeout=30), "the stream stalled while the store was down"
        postgres.start()
        counted = sum(_counters(url, fqfn).values())
        # The function goes on by itself once the store is back.
        assert wait_until(_counted_past(url, fqfn, counted), timeout=60), _instance(cluster, name)
        assert cluster.workers[0].alive()
    return causes


def _counted_past(url: str, fqfn: str, floor: int) -> Any:
    return lambda: sum(_counters(url, fqfn).values()) > floor


def _create(cluster: Cluster, name: str, guarantee: str) -> None:
    res = magnetar(
        "functions", "create", "--admin-url", cluster.workers[0].url, "--name", name,
        "--py", str(EXAMPLE), "--classname", "counted_echo_example.CountedEcho",
        "--inputs", f"{name}-in", "--output", f"{name}-out", "--subs-position", "Earliest",
        "--processing-guarantees", guarantee,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: _instance(cluster, name)["running"], timeout=30), _instance(cluster, name)


@pytest.mark.parametrize("runtime", ["thread", "process"])
@pytest.mark.parametrize("guarantee", ["ATLEAST_ONCE", "EFFECTIVELY_ONCE"])
def test_batches_fail_while_the_store_is_down_and_resume_exactly_after(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    own_postgres: StoppablePostgres,
    tmp_path: Path,
    guarantee: str,
    runtime: str,
) -> None:
    url = own_postgres.new_database()
    root = tmp_path / "cluster"
    root.mkdir()
    cluster = new_cluster(broker, str(root), 1, ["--state-storage-url", url, "--runtime", runtime])
    try:
        name = f"pg{uuid.uuid4().hex[:6]}"
        fqfn = f"public/default/{name}"
        _create(cluster, name, guarantee)
        stream = Stream(client, f"{name}-in", rate=200).start()
        try:
            causes = _stream_with_outages(cluster, name, stream, own_postgres, url)
        finally:
            stream.stop()
        assert len(causes) == OUTAGES, causes
        acked = set(stream.acked)
        assert len(acked) > 1000, (len(acked), stream.failed)
        if guarantee == "ATLEAST_ONCE":
            outputs = _outputs(client, f"{name}-out", {f"{p}!" for p in acked}, timeout=90)
            missing = {f"{p}!" for p in acked} - outputs
            assert not missing, f"{len(missing)} acknowledged inputs never came out: {sorted(missing)[:10]}"
            assert wait_until(lambda: acked <= set(_counters(url, fqfn)), timeout=60)
        else:
            held = set(_messages(client, f"{name}-in").values())
            assert acked <= held
            assert wait_until(lambda: sum(_counters(url, fqfn).values()) >= len(held), timeout=90), (
                sum(_counters(url, fqfn).values()),
                len(held),
                _instance(cluster, name),
            )
            counters = _counters(url, fqfn)
            wrong = {k: v for k, v in counters.items() if v != 1}
            assert not wrong, f"{len(wrong)} inputs counted more than once: {list(wrong.items())[:5]}"
            assert set(counters) == held, sorted(held - set(counters))[:10]
        instance = _instance(cluster, name)
        assert instance["running"], instance
        # The log says when the store went away and came back, once each time (not per batch).
        assert _logged(root, f"{fqfn}: the state store does not answer") == OUTAGES
        assert _logged(root, f"{fqfn}: the state store answers again") == OUTAGES
        assert cluster.workers[0].alive()
        assert rest(cluster.workers[0].url, "GET", "/admin/v2/worker/cluster/leader")["workerId"] == "w1"
    finally:
        cluster.stop_all()
