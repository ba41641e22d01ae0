"""The broker goes away mid-stream, several times, and comes back: nothing acknowledged is lost.

The test owns its broker (pulsar-lite on a fixed port, with its data dir) and stops and
starts it while a producer streams inputs to a function on a real worker process. (A
TCP proxy in front of pulsar-lite would not cut the data connections: its lookup
answers send clients to the broker's own address.) An input counts as sent only once
the broker acknowledged it as persisted. ATLEAST_ONCE: every such input comes out
(duplicates allowed). EFFECTIVELY_ONCE: each input the topic holds is counted exactly
once in the function's state. The worker keeps serving and running the instance.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.state import open_state_store
from tests.cluster.conftest import Cluster, magnetar, rest, wait_until
from tests.cluster.test_cluster import create, status

CUTS = 3
WORDCOUNT = Path(__file__).resolve().parents[1] / "cluster" / "wordcount_example.py"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(str(tmp_path / "broker")).start()
    yield broker
    broker.stop()


class Stream:
    """Sends ``m0``, ``m1``, … at a steady pace; keeps those the broker acknowledged."""

    def __init__(self, client: pulsar.Client, topic: str, rate: float) -> None:
        self.producer = client.create_producer(topic, batching_enabled=False, send_timeout_millis=10_000)
        self.rate = rate
        self.acked: set[str] = set()
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sent(self, payload: str) -> object:
        def done(result: pulsar.Result, _msg_id: object) -> None:
            with self._lock:
                if result == pulsar.Result.Ok:
                    self.acked.add(payload)
                else:
                    self.failed += 1

        return done

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(1.0 / self.rate):
            payload = f"m{i}"
            i += 1
            try:
                self.producer.send_async(payload.encode(), self._sent(payload))
            except pulsar.PulsarException:
                with self._lock:
                    self.failed += 1

    def start(self) -> Stream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.producer.flush()


def test_at_least_once_loses_nothing_over_broker_restarts(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    cluster = Cluster(own_broker.url, f"public/fn{uuid.uuid4().hex[:8]}", str(tmp_path))
    cluster.start_worker("w1")
    try:
        assert wait_until(lambda: cluster.leader(), timeout=30)
        name = f"cut{uuid.uuid4().hex[:6]}"
        inp, out = f"{name}-in", f"{name}-out"
        create(cluster, name, inp, out, 1)
        assert wait_until(lambda: status(cluster, name)["numRunning"] == 1, timeout=30)
        client = pulsar.Client(own_broker.url, operation_timeout_seconds=10)
        try:
            stream = _stream_with_cuts(client, inp, own_broker)
            assert len(stream.acked) > 500, (len(stream.acked), stream.failed)
            outputs = _outputs(client, out, {f"{p}!" for p in stream.acked}, timeout=90)
        finally:
            client.close()
        missing = {f"{p}!" for p in stream.acked} - outputs
        assert not missing, f"{len(missing)} acknowledged inputs never came out: {sorted(missing)[:10]}"
        assert cluster.workers[0].alive()
        assert rest(cluster.workers[0].url, "GET", "/admin/v2/worker/cluster/leader")["workerId"] == "w1"
        assert wait_until(lambda: status(cluster, name)["numRunning"] == 1, timeout=30), status(cluster, name)
    finally:
        cluster.stop_all()


def _outputs(client: pulsar.Client, topic: str, want: set[str], timeout: float) -> set[str]:
    """Everything on ``topic`` until ``want`` is all there or ``timeout`` passes."""
    consumer = client.subscribe(
        topic, f"check-{uuid.uuid4().hex[:6]}", initial_position=pulsar.InitialPosition.Earliest
    )
    got: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not want <= got and time.monotonic() < deadline:
            try:
                msg = consumer.receive(500)
            except pulsar.Timeout:
                continue
            got.add(msg.data().decode())
            consumer.acknowledge(msg)
    finally:
        consumer.close()
    return got


def _stream_with_cuts(client: pulsar.Client, topic: str, broker: EmbeddedBroker) -> Stream:
    """Stream to ``topic`` while the broker is stopped and started again :data:`CUTS` times."""
    stream = Stream(client, topic, rate=200).start()
    for _ in range(CUTS):
        time.sleep(1.5)  # let the stream flow between cuts
        broker.stop()
        time.sleep(1.0)  # the broker is gone for a second
        broker.start()
    time.sleep(1.5)
    stream.stop()
    return stream


def _messages(client: pulsar.Client, topic: str) -> dict[tuple[int, int, int], str]:
    """Payload by position of every message ``topic`` holds (a reader may see one twice)."""
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    found: dict[tuple[int, int, int], str] = {}
    try:
        while True:
            try:
                msg = reader.read_next(2000)
            except pulsar.Timeout:
                return found
            mid = msg.message_id()
            found[(mid.ledger_id(), mid.entry_id(), mid.batch_index())] = msg.data().decode()
    finally:
        reader.close()


def test_effectively_once_counters_stay_exact_over_broker_restarts(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    cluster = Cluster(own_broker.url, f"public/fn{uuid.uuid4().hex[:8]}", str(tmp_path))
    cluster.start_worker("w1")
    try:
        assert wait_until(lambda: cluster.leader(), timeout=30)
        name = f"eo{uuid.uuid4().hex[:6]}"
        url = cluster.workers[0].url
        res = magnetar(
            "functions", "create", "--admin-url", url, "--name", name, "--py", str(WORDCOUNT),
            "--classname", "wordcount_example.WordCount", "--inputs", f"{name}-in",
            "--subs-position", "Earliest", "--processing-guarantees", "EFFECTIVELY_ONCE",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert wait_until(lambda: status(cluster, name)["numRunning"] == 1, timeout=30)
        client = pulsar.Client(own_broker.url, operation_timeout_seconds=10)
        try:
            stream = _stream_with_cuts(client, f"{name}-in", own_broker)
            assert len(stream.acked) > 500, (len(stream.acked), stream.failed)
            held = _messages(client, f"{name}-in")
        finally:
            client.close()
        assert stream.acked <= set(held.values())

        def lines() -> int:
            got = rest(url, "GET", f"/admin/v3/functions/public/default/{name}/state/__lines__")
            return int(got["numberValue"])

        assert wait_until(lambda: lines() == len(held), timeout=60), (lines(), len(held))
        time.sleep(2.0)  # nothing is counted twice late either
        assert lines() == len(held)
        # Each input counted once: a word's counter is how many inputs hold it.
        store = open_state_store(f"sqlite:///{tmp_path}/w1/state.db")
        try:
            fqfn = f"public/default/{name}"
            per_word = Counter(held.values())
            wrong = {
                w: (store.get_counter(fqfn, w), n)
                for w, n in per_word.items()
                if store.get_counter(fqfn, w) != n
            }
        finally:
            store.close()
        assert not wrong, f"{len(wrong)} counters off (got, want): {list(wrong.items())[:5]}"
        assert cluster.workers[0].alive()
    finally:
        cluster.stop_all()
