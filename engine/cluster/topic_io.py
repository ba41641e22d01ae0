"""Reading and writing the cluster's topics without blocking the event loop.

Blocking client calls run on a dedicated tailer thread (reads) or in the default
executor (writes); records reach the loop in batches via ``call_soon_threadsafe``.
Nothing here runs on the client's own callback threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pulsar

from engine.broker.adapter import last_message_id

__all__ = ["TopicTailer", "TopicWriter", "position_key", "read_range", "topic_end"]

log = logging.getLogger(__name__)


def position_key(msg_id: Any) -> tuple[int, int, int]:
    """Sortable ``(ledger, entry, batch)`` of a message id."""
    return (msg_id.ledger_id(), msg_id.entry_id(), msg_id.batch_index())


def topic_end(client: pulsar.Client, topic: str) -> Any | None:
    """The id of the last message on ``topic``, or ``None`` when it is empty."""
    probe = client.subscribe(
        topic, f"probe-{uuid.uuid4().hex}", initial_position=pulsar.InitialPosition.Latest
    )
    try:
        last = last_message_id(probe)
    except pulsar.PulsarException:
        last = None  # the broker has no last message id for a topic never written to
    finally:
        try:
            probe.unsubscribe()
        except pulsar.PulsarException as exc:  # pragma: no cover - the probe is closed instead
            log.debug("unsubscribing the probe of %s failed (%s); closing it", topic, exc)
            probe.close()
    if last is None or last.entry_id() < 0 or last.ledger_id() < 0:
        return None
    return last


def read_range(
    client: pulsar.Client, topic: str, start: Any, end: Any | None, inclusive: bool = False
) -> tuple[list[Any], Any]:
    """Messages after ``start`` (or from it, ``inclusive``) up to ``end``; returns ``(messages, last id)``."""
    if end is None:
        return [], start
    reader = client.create_reader(topic, start, start_message_id_inclusive=inclusive)
    out: list[Any] = []
    last = start
    # ``end`` names an entry; a batched entry holds several messages, so read the whole of it.
    end_entry = position_key(end)[:2]
    try:
        if not inclusive and not reader.has_message_available():
            return out, last  # ``start`` is the end already (a snapshot taken at the last record)
        while True:
            try:
                msg = reader.read_next(5000)
            except pulsar.Timeout:
                raise TimeoutError(f"{topic}: reading to {end} stalled after {len(out)} messages")
            last = msg.message_id()
            if out and position_key(last) <= position_key(out[-1].message_id()):
                continue  # a redelivered entry
            out.append(msg)
            if position_key(last)[:2] >= end_entry and not reader.has_message_available():
                return out, last
            if position_key(last)[:2] > end_entry:
                return out, last
    finally:
        reader.close()


class TopicTailer:
    """Follows a topic from a position on its own thread, handing batches to the loop."""

    def __init__(
        self,
        client: pulsar.Client,
        topic: str,
        start: Any,
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[list[Any]], None],
    ) -> None:
        self._client = client
        self._topic = topic
        self._start = start
        self._loop = loop
        self._on_batch = on_batch
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"tailer-{topic.rsplit('/', 1)[-1]}", daemon=True
        )
        self.last_position: tuple[int, int, int] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        reader = self._client.create_reader(self._topic, self._start)
        failing = False
        try:
            while not self._stop.is_set():
                batch: list[Any] = []
                try:
                    batch.append(reader.read_next(200))
                    while len(batch) < 500 and reader.has_message_available():
                        batch.append(reader.read_next(200))
                except pulsar.Timeout:
                    pass
                except Exception as exc:  # a closed client during shutdown, or a broker hiccup
                    if self._stop.is_set():
                        return
                    if not failing:  # once per streak of failures, not per retry
                        log.warning("tailing %s: %s: %s; retrying", self._topic, type(exc).__name__, exc)
                    failing = True
                    self._stop.wait(0.5)
                    continue
                if failing:
                    log.info("tailing %s: reading again", self._topic)
                    failing = False
                fresh = []
                for msg in batch:
                    pos = position_key(msg.message_id())
                    if self.last_position is not None and pos <= self.last_position:
                        continue  # a whole entry sent again
                    self.last_position = pos
                    fresh.append(msg)
                if fresh and not self._stop.is_set():
                    self._loop.call_soon_threadsafe(self._on_batch, fresh)
        finally:
            try:
                reader.close()
            except pulsar.PulsarException as exc:  # already closed with the client
                log.debug("closing the reader of %s: %s", self._topic, exc)


class TopicWriter:
    """Writes keyed records with properties; ``await write(...)`` returns once persisted.

    Construction creates a producer and :meth:`close` closes it: both block, so on the
    event loop run them with ``asyncio.to_thread``.
    """

    def __init__(self, client: pulsar.Client, topic: str, name: str | None = None) -> None:
        self._client = client
        self._topic = topic
        self._name = name
        self._records = self._open()

    def _open(self) -> pulsar.Producer:
        return self._client.create_producer(
            self._topic,
            producer_name=self._name,
            batching_enabled=False,
            block_if_queue_full=True,
            send_timeout_millis=30000,
        )

    async def write(self, key: str, value: bytes, properties: dict[str, str]) -> Any:
        """Send one record and wait until the broker has it; returns its message id."""
        return await asyncio.to_thread(self._send, key, value, properties)

    def _send(self, key: str, value: bytes, properties: dict[str, str]) -> Any:
        try:
            return self._records.send(value, properties=properties, partition_key=key)
        except pulsar.AlreadyClosed:
            # The broker closed the producer for good (a broker whose disk filled does):
            # open another, so writes resume once the broker does.
            log.warning("the producer of %s was closed by the broker; opening another", self._topic)
            self._records = self._open()
            return self._records.send(value, properties=properties, partition_key=key)

    def close(self) -> None:
        """Close the producer (blocking)."""
        try:
            self._records.close()
        except pulsar.PulsarException as exc:  # already closed with the client
            log.debug("closing the writer of %s: %s", self._topic, exc)
