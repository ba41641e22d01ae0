"""Helpers for the Pulsar IO tests: connectors run through the CLI's own runner on the real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.cli.connectors_cmd import build_runner
from engine.cli.main import build_parser
from engine.io.runner import ConnectorRunner


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it is truthy; its last value."""
    deadline = time.monotonic() + timeout
    last = predicate()
    while not last and time.monotonic() < deadline:
        time.sleep(interval)
        last = predicate()
    return last


def topic() -> str:
    """A fresh topic name."""
    return f"persistent://public/default/io-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def run_connector(broker: EmbeddedBroker, tmp_path: Any) -> Iterator[Callable[..., ConnectorRunner]]:
    """Start ``magnetar sources|sinks localrun ARGS`` in this process; stopped at the end."""
    runners: list[ConnectorRunner] = []

    def start(*argv: str) -> ConnectorRunner:
        args = build_parser().parse_args(
            [
                *argv,
                "--broker-url",
                broker.url,
                "--broker-kind",
                "pulsar-lite",
                "--data-dir",
                str(tmp_path / "data"),
            ]
        )
        runner = build_runner(args)
        runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()


def consume(client: pulsar.Client, name: str, count: int, timeout: float = 30.0) -> list[Any]:
    """The first ``count`` messages on ``name`` (fewer if they do not come in time).

    A reader that reconnects may be handed messages it read already; those (same message
    id) are dropped, so the list is what is on the topic.
    """
    reader = client.create_reader(name, pulsar.MessageId.earliest)
    got: list[Any] = []
    seen: set[tuple[int, int, int, int]] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            try:
                msg = reader.read_next(200)
            except pulsar.Timeout:
                continue
            mid = msg.message_id()
            key = (mid.partition(), mid.ledger_id(), mid.entry_id(), mid.batch_index())
            if key not in seen:
                seen.add(key)
                got.append(msg)
    finally:
        reader.close()
    return got


def produce(
    client: pulsar.Client, name: str, payloads: list[bytes], key: str | None = None, batching: bool = True
) -> None:
    """Publish ``payloads`` to ``name`` and wait until they are persisted; raises if any was not.

    The producer blocks while its queue is full: without that, a send past the client's
    1,000 pending messages fails at once, and a loaded broker would silently lose inputs.
    """
    producer = client.create_producer(
        name, batching_enabled=batching, batching_max_publish_delay_ms=1, block_if_queue_full=True
    )
    failed: list[Any] = []

    def sent(result: Any, _msg_id: Any) -> None:  # client thread: record only
        if result != pulsar.Result.Ok:
            failed.append(result)

    try:
        for data in payloads:
            if key:
                producer.send_async(data, sent, partition_key=key)
            else:
                producer.send_async(data, sent)
        producer.flush()
    finally:
        producer.close()
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(payloads)} messages were not persisted: {failed[0]}")
