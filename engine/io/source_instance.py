"""One running source instance: a loop that reads records from a connector and publishes them.

The loop runs on the instance's own thread:

1. apply the completions of earlier batches (handed over from the client's threads
   through deques): a persisted record is acknowledged to the source (``Record.ack``), a
   failed one failed (``Record.fail``), so a source commits its offsets only after
   persistence;
2. commit the state changes the source made (``context.put_state`` …) in one transaction;
3. ``Source.read()`` more records while fewer than ``max_pending`` are in flight, queue
   each on its producer with no per-message callback (``send_async(message, None)``),
   then ``flush_async`` the producers the batch used; the batch's records settle together
   once those flushes reported (:class:`~engine.io.source_flushes.SourceFlushes`).

A record whose payload is larger than :data:`CALLBACK_ABOVE_BYTES` is sent with a
callback of its own instead: the client rejects an oversized message at once, and such
a rejection would not show in the batch's flush.

Under ATMOST_ONCE a record is acknowledged to the source as soon as it is queued.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson
import pulsar

from engine.broker.adapter import MessageBuilder
from engine.broker.direct import producer_view
from engine.function.serdes import codec_for
from engine.hotpath import HotPath
from engine.instance.direct_views import views_enabled
from engine.instance.instance import InstanceState
from engine.instance.options import InstanceOptions
from engine.instance.producers import ProducerPool
from engine.io.api import Record, Source
from engine.io.context import connector_context
from engine.io.source_flushes import SourceFlushes
from engine.io.spec import SourceSpec
from engine.state.store import StateStore

__all__ = ["CALLBACK_ABOVE_BYTES", "SourceInstance"]

log = logging.getLogger(__name__)

#: Payloads above this size get a per-message callback (the broker's limit is 5 MiB by default).
CALLBACK_ABOVE_BYTES = 1 << 20


class SourceInstance:
    """Runs instance ``instance_id`` of a source on its own thread.

    Parameters
    ----------
    spec
        The validated source.
    instance_id
        Which instance this is.
    source
        The connector object (used by this instance alone).
    client
        A connected ``pulsar.Client``.
    hot
        The hot-path twin (codecs, state buffer, stats).
    state_store
        Where the source's state lives (``None``: no state API).
    secrets_provider
        Provider for ``Context.get_secret``.
    options
        Shutdown settings.
    """

    def __init__(
        self,
        spec: SourceSpec,
        instance_id: int,
        source: Source,
        client: pulsar.Client,
        hot: HotPath,
        state_store: StateStore | None,
        secrets_provider: Any,
        options: InstanceOptions | None = None,
    ) -> None:
        self.spec = spec
        self.instance_id = instance_id
        self.source = source
        self.client = client
        self.hot = hot
        self.state_store = state_store
        self.options = options or InstanceOptions()
        self.stats = hot.stats.InstanceStats()
        self.state_buffer = hot.counters.StateBuffer()
        self.function_id = str(uuid.uuid4())
        self.producers = ProducerPool(client, spec.producer, f"{spec.fqfn}:{instance_id}")
        self.codec = (
            codec_for(hot, spec.serde_class_name, spec.schema_type)
            if (spec.serde_class_name or spec.schema_type)
            else None
        )
        self.state = InstanceState.CREATED
        self.failure: BaseException | None = None
        self.written = 0
        self.read_count = 0
        self.source_exceptions: deque[tuple[str, int]] = deque(maxlen=10)
        self.num_source_exceptions = 0
        self.last_received_ms = 0
        self._secrets_provider = secrets_provider
        #: ``(record or None, error, completes a send)``, appended on the client's threads.
        self._done: deque[tuple[Record | None, str | None, bool]] = deque()
        self._pending = 0
        self._flushes = SourceFlushes(self.producers, self._settle_batch)
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = False

    # -- life cycle ----------------------------------------------------------------------------
    def start(self, wait: float = 30.0) -> None:
        """Open the source and start the loop thread; raises if that fails."""
        self.state = InstanceState.STARTING
        self._thread = threading.Thread(
            target=self._run, name=f"source-{self.spec.fqfn}:{self.instance_id}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(wait):
            raise TimeoutError(f"source {self.spec.fqfn}:{self.instance_id} did not start within {wait}s")
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        """Stop reading, wait for the records in flight, close the source."""
        if self.state in (InstanceState.RUNNING, InstanceState.STARTING):
            self.state = InstanceState.STOPPING
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.options.stop_grace_s + 5.0)

    def is_alive(self) -> bool:
        """True while the loop thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def failure_text(self) -> str:
        """Why the loop stopped, as ``Type: message``; empty while it has not failed."""
        return "" if self.failure is None else f"{type(self.failure).__name__}: {self.failure}"

    def _context(self, spec: SourceSpec, config: dict[str, Any], output_topic: str | None) -> Any:
        """A Context of this instance for ``spec`` (its identity and secrets) with user config ``config``."""
        return connector_context(
            hot=self.hot,
            spec=spec,
            function_id=self.function_id,
            function_version=self.options.function_version,
            instance_id=self.instance_id,
            input_topics=[],
            output_topic=output_topic,
            config=config,
            secrets_provider=self._secrets_provider,
            stats=self.stats,
            producers=self.producers,
            state_store=self.state_store,
            state_buffer=self.state_buffer,
            acknowledge=self._no_ack,
        )

    def _open(self) -> None:
        spec = self.spec
        context = self._context(spec, spec.config, spec.destination_topic)
        self.producers.get(spec.destination_topic)
        self.source.open(spec.config, context)
        self._opened = True

    @staticmethod
    def _no_ack(_msg_id: Any, _topic: str) -> None:
        raise RuntimeError("a source has no inputs to acknowledge")

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:
            self.failure = exc
            self.state = InstanceState.FAILED
            self._started.set()
            self._close()
            return
        self.state = InstanceState.RUNNING
        self._started.set()
        try:
            self._loop()
        except BaseException as exc:
            self.failure = exc
            log.exception("source %s:%s crashed", self.spec.fqfn, self.instance_id)
        finally:
            self._drain_in_flight(time.monotonic() + self.options.stop_grace_s)
            self._close()
            self.state = InstanceState.FAILED if self.failure is not None else InstanceState.STOPPED

    def _loop(self) -> None:
        stop = self._stop
        max_pending = self.spec.max_pending
        next_minute = time.monotonic() + 60.0
        while not stop.is_set():
            self._apply()
            self._commit_state()
            if self._pending >= max_pending:
                self._flushes.wait(0.005)  # the broker is behind: read no further until sends complete
                continue
            try:
                got = self.source.read()
            except Exception as exc:  # the outside system failed this read: reported, tried again
                self._source_exception(
                    f"{type(self.source).__name__}.read failed: {type(exc).__name__}: {exc}"
                )
                stop.wait(1.0)
                continue
            if got:
                self._send(got if isinstance(got, Sequence) else [got])
            if time.monotonic() >= next_minute:
                self.stats.roll_minute()
                next_minute += 60.0

    def _source_exception(self, text: str) -> None:
        log.warning("%s:%s %s", self.spec.fqfn, self.instance_id, text)
        self.num_source_exceptions += 1
        self.source_exceptions.append((text, int(time.time() * 1000)))
        self.stats.add_system_exception(text)

    # -- sending -------------------------------------------------------------------------------
    def _encode(self, value: Any) -> bytes:
        if self.codec is not None:
            return bytes(self.codec.encode(value))
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        return orjson.dumps(value)

    def _topic_of(self, record: Record) -> str:
        if record.partition is None:
            return self.spec.destination_topic
        return f"{self.spec.destination_topic}-partition-{record.partition}"

    def _send(self, records: Sequence[Record]) -> None:
        self.read_count += len(records)
        self.stats.add_received(len(records))
        self.last_received_ms = int(time.time() * 1000)
        at_most_once = self.spec.processing_guarantees == "ATMOST_ONCE"
        done = self._done
        producers = self.producers
        plain_text = self.codec is None  # a str value is sent as its UTF-8 bytes
        destination = self.spec.destination_topic
        builder = MessageBuilder
        send_record = self.hot.direct.send_record
        raw_of: dict[str, Any] = {}  # topic -> its low-level producer, touched for this batch's flush
        batch: list[Record] = []
        for record in records:
            value = record.value
            try:
                data = value.encode("utf-8") if plain_text and type(value) is str else self._encode(value)
            except Exception as exc:  # a record the SerDe cannot encode fails alone
                text = f"encoding the record failed: {type(exc).__name__}: {exc}"
                self.stats.add_system_exception(text)
                done.append((record, text, False))
                continue
            topic = destination if record.partition is None else self._topic_of(record)
            try:
                if len(data) > CALLBACK_ABOVE_BYTES:
                    self._send_alone(topic, data, record, at_most_once)
                    continue
                raw = raw_of.get(topic)
                if raw is None:
                    raw = raw_of[topic] = self._producer_of(topic)
                    producers.touch(topic)
                send_record(raw, builder, data, record.key, record.properties, record.event_time)
            except pulsar.PulsarException as exc:
                self.stats.add_system_exception(f"publishing failed: {exc}")
                done.append((record, f"publishing failed: {exc}", False))
                continue
            if at_most_once:
                done.append((record, None, False))
            batch.append(record)
        self._pending += len(batch)
        self._flushes.flush(batch)

    def _producer_of(self, topic: str) -> Any:
        """The low-level producer of ``topic``, seen through the compiled twin's direct view."""
        raw = self.producers.raw(topic)
        return producer_view(self.hot, raw) if views_enabled(self.hot) else raw

    def _send_alone(self, topic: str, data: bytes, record: Record, at_most_once: bool) -> None:
        """Send one large record with its own callback (an oversized one is rejected at once)."""
        kwargs: dict[str, Any] = {}
        if record.properties:
            kwargs["properties"] = record.properties
        if record.key is not None:
            kwargs["partition_key"] = record.key
        if record.event_time:
            kwargs["event_timestamp"] = record.event_time
        callback = self._callback(None if at_most_once else record)
        self.producers.get(topic).send_async(data, callback, **kwargs)
        self._pending += 1
        if at_most_once:
            self._done.append((record, None, False))

    def _callback(self, record: Record | None) -> Any:
        done = self._done

        def sent(result: Any, _msg_id: Any) -> None:  # client thread: hand over only
            done.append(
                (record, None if result == pulsar.Result.Ok else f"publishing failed: {result}", True)
            )

        return sent

    def _apply(self) -> None:
        """Acknowledge persisted records to the source, fail the others (instance thread)."""
        self._flushes.drain()
        done = self._done
        while done:
            record, error, sent = done.popleft()
            if sent:
                self._count_sends(1, error)
            if record is not None:
                self._settle_record(record, error)

    def _settle_batch(self, records: list[Record], error: str | None) -> None:
        """A batch's flushes all reported (``error`` is ``None``) or one failed.

        Under ATMOST_ONCE its records were acknowledged when queued: they are only counted.
        """
        self._count_sends(len(records), error)
        if self.spec.processing_guarantees == "ATMOST_ONCE":
            return
        for record in records:
            self._settle_record(record, error)

    def _count_sends(self, count: int, error: str | None) -> None:
        self._pending -= count
        if error is None:
            self.written += count
            self.stats.add_successes(count, 0.0)
        else:
            for _ in range(count):
                self.stats.add_system_exception(error)

    def _settle_record(self, record: Record, error: str | None) -> None:
        try:
            if error is None:
                if record.ack is not None:
                    record.ack()
            elif record.fail is not None:
                record.fail(error)
        except Exception as exc:  # the source's own callback failed; reported, the loop goes on
            self._source_exception(
                f"the record's {'ack' if error is None else 'fail'} callback failed: {exc}"
            )

    def _commit_state(self) -> None:
        buffer = self.state_buffer
        if buffer.is_empty():
            return
        deltas, resets, values = buffer.drain()
        assert self.state_store is not None  # the Context buffers state only with a store
        try:
            self.state_store.commit(self.spec.fqfn, deltas, resets, values)
        except Exception as exc:  # reported; the source sees its state as not committed
            self._source_exception(f"state commit failed: {type(exc).__name__}: {exc}")

    def _drain_in_flight(self, deadline: float) -> None:
        """Wait for the batches in flight until ``deadline``; fail what is still unsettled then."""
        try:
            while self._pending > 0 and time.monotonic() < deadline:
                self._apply()
                if self._pending > 0:
                    self._flushes.wait(0.005)  # completions arrive on the client's threads
        finally:
            self._apply()
            self._commit_state()

    def _close(self) -> None:
        # Closing the producers fails what they still hold; those records are failed to the
        # source (before it is closed) rather than left unsettled.
        self.producers.close()
        self._apply()
        self._flushes.fail_waiting("publishing failed: the instance stopped before the batch persisted")
        self._commit_state()
        if self._opened:
            self._opened = False
            try:
                self.source.close()
            except Exception as exc:  # reported
                self._source_exception(f"{type(self.source).__name__}.close failed: {exc}")

    # -- status ----------------------------------------------------------------------------------
    def status_proto(self, worker_id: str = "") -> Any:
        """Apache's ``FunctionStatus`` message (received: records read; processed: records persisted)."""
        from engine.instance.status import function_status

        return function_status(
            self.stats.snapshot(),
            instance_id=self.instance_id,
            running=self.state is InstanceState.RUNNING and self.is_alive(),
            failure=self.failure_text,
            worker_id=worker_id,
        )

    def metrics_proto(self) -> Any:
        """Apache's ``MetricsData`` message for this instance."""
        from engine.instance.status import metrics_data

        return metrics_data(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The stats snapshot (a source has no input topic to lag behind)."""
        snap: dict[str, Any] = self.stats.snapshot()
        return snap

    def status(self) -> dict[str, Any]:
        """Apache's SourceStatus instance fields, as a dict."""
        snap = self.stats.snapshot()
        return {
            "running": self.state is InstanceState.RUNNING and self.is_alive(),
            "error": self.failure_text,
            "numRestarts": 0,
            "numReceivedFromSource": self.read_count,
            "numSystemExceptions": snap["system_exceptions"],
            "latestSystemExceptions": [
                {"exceptionString": t, "timestampMs": ts} for t, ts in snap["latest_system_exceptions"]
            ],
            "numSourceExceptions": self.num_source_exceptions,
            "latestSourceExceptions": [
                {"exceptionString": t, "timestampMs": ts} for t, ts in self.source_exceptions
            ],
            "numWritten": self.written,
            "lastReceivedTime": self.last_received_ms,
            "instanceId": self.instance_id,
            "workerId": "",
        }
