"""A source's batches settle as units on the real broker: acked once persisted, failed when not."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulsar

from engine.broker import EmbeddedBroker
from engine.broker.client import make_client
from engine.hotpath import HotPath
from engine.instance.options import InstanceOptions
from engine.io.api import Record, Source
from engine.io.source_instance import CALLBACK_ABOVE_BYTES, SourceInstance
from engine.io.spec import SourceSpec
from tests.io.conftest import consume, topic, wait_until


class Batches(Source):
    """Returns each batch handed to it through :meth:`give`; records which records settled how."""

    def __init__(self) -> None:
        self.queue: list[list[Any]] = []
        self.lock = threading.Lock()
        self.acked: list[Any] = []
        self.failed: list[tuple[Any, str]] = []

    def give(self, values: Sequence[Any]) -> None:
        with self.lock:
            self.queue.append(list(values))

    def read(self) -> list[Record] | None:
        with self.lock:
            if not self.queue:
                return None
            values = self.queue.pop(0)
        return [Record(v, ack=self._ack(v), fail=self._fail(v)) for v in values]

    def _ack(self, v: Any) -> Any:
        return lambda: self.acked.append(v)

    def _fail(self, v: Any) -> Any:
        return lambda reason: self.failed.append((v, reason))


def _spec(name: str, destination: str) -> SourceSpec:
    return SourceSpec(
        tenant="public",
        namespace="default",
        name=name,
        destination_topic=destination,
        source_type=None,
        class_name="Batches",
        archive=None,
        config={},
    )


def test_a_batch_that_cannot_persist_fails_its_records_and_no_others(hot: HotPath, tmp_path: Path) -> None:
    own = EmbeddedBroker(str(tmp_path / "broker")).start()
    client = make_client(own.options())
    source = Batches()
    instance = SourceInstance(
        _spec("batches", topic()),
        0,
        source,
        client,
        hot,
        None,
        None,
        InstanceOptions(stop_grace_s=1.0),
    )
    try:
        instance.start()
        source.give([f"a{i}" for i in range(5)])
        assert wait_until(lambda: len(source.acked) == 5), source.acked
        own.stop()  # the broker goes away: the next batch's flush cannot report success
        source.give([f"b{i}" for i in range(4)])
        assert wait_until(lambda: instance.read_count == 9)
        instance.stop()
        assert sorted(source.acked) == [f"a{i}" for i in range(5)]
        assert sorted(v for v, _ in source.failed) == [f"b{i}" for i in range(4)]
        assert all(reason.startswith("publishing failed") for _, reason in source.failed)
        status = instance.status()
        assert status["numWritten"] == 5
        assert status["numReceivedFromSource"] == 9
        assert status["numSystemExceptions"] >= 4
    finally:
        instance.stop()
        client.close()
        own.stop()


def test_batches_and_large_records_are_acked_once_persisted_in_order(
    hot: HotPath, broker: EmbeddedBroker, client: pulsar.Client
) -> None:
    name = topic()
    source = Batches()
    own_client = make_client(broker.options())
    instance = SourceInstance(_spec("mixed", name), 0, source, own_client, hot, None, None)
    big = os.urandom(CALLBACK_ABOVE_BYTES + 1)
    try:
        instance.start()
        source.give(["one", "two"])
        source.give([big, "three"])
        source.give([f"x{i}" for i in range(500)])
        assert wait_until(lambda: len(source.acked) == 504), len(source.acked)
        assert source.failed == []
        got = consume(client, name, 504)
        datas = [m.data() for m in got]
        assert datas[:4] == [b"one", b"two", big, b"three"]
        assert datas[4:] == [f"x{i}".encode() for i in range(500)]
        assert instance.status()["numWritten"] == 504
    finally:
        instance.stop()
        own_client.close()
