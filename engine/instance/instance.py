"""One running function instance: the loop around the hot path.

The loop runs on the instance's own thread and never on the client's:

1. ``batch_receive`` a batch of raw messages;
2. ordered subscriptions drop redelivered duplicates; ATMOST_ONCE acks on receipt;
3. the dispatcher decodes, calls the function and queues outputs (no callbacks);
4. state changes of the batch commit in one transaction (a failed commit fails the
   batch: it is negatively acknowledged, never acked);
5. failures are retried (negative ack) and, after ``maxMessageRetries``, sent to the
   dead-letter topic with payload, properties and error, then acked;
6. inputs with nothing in flight are acked; inputs with outputs in flight are parked
   until one ``flush_async`` per producer used reports them persisted.

Completions arrive on the client's thread and are only appended to a deque; acks,
nacks and user callbacks happen back on the instance thread.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import _pulsar
import pulsar

from engine.config.validation import FunctionSpec
from engine.function.loader import LoadedFunction
from engine.function.serdes import codec_for
from engine.hotpath import HotPath
from engine.instance.context import InstanceContext
from engine.instance.log_topic import function_logger
from engine.instance.producers import ProducerPool
from engine.instance.progress import PartitionProgress, position_with_size
from engine.state.store import StateConflict, StateStore, StateStoreError

__all__ = ["DLQ_ERROR_PROPERTY", "FunctionInstance", "InstanceOptions"]

log = logging.getLogger(__name__)

#: Property of a dead-lettered message holding the last error.
DLQ_ERROR_PROPERTY = "__pfn_error__"

_CONSUMER_TYPES = {
    "SHARED": pulsar.ConsumerType.Shared,
    "FAILOVER": pulsar.ConsumerType.Failover,
    "KEY_SHARED": pulsar.ConsumerType.KeyShared,
}


@dataclass
class InstanceOptions:
    """Runtime knobs of an instance that are not part of the FunctionConfig."""

    batch_max_messages: int = 1000
    batch_timeout_ms: int = 2
    nack_delay_ms: int = 1000
    input_message_properties: bool = False
    function_version: str = "0"
    stop_grace_s: float = 10.0
    #: Whether the broker de-duplicates producers (None: not known). Only informs the
    #: EFFECTIVELY_ONCE start-up warning: without it, outputs are at-least-once.
    broker_deduplication: bool | None = None


class FunctionInstance:
    """Runs instance ``instance_id`` of a function on its own thread.

    Parameters
    ----------
    spec
        The validated function.
    function
        The loaded user code (its callable is shared by nobody else).
    client
        A connected ``pulsar.Client``.
    hot
        The hot-path twin to run.
    state_store
        Where state lives; ``None`` disables the state API.
    secrets_provider
        Provider for ``Context.get_secret``.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        instance_id: int,
        function: LoadedFunction,
        client: pulsar.Client,
        hot: HotPath,
        state_store: StateStore | None,
        secrets_provider: Any,
        options: InstanceOptions | None = None,
    ) -> None:
        self.spec = spec
        self.instance_id = instance_id
        self.function = function
        self.client = client
        self.hot = hot
        self.state_store = state_store
        self.options = options or InstanceOptions()
        self.stats = hot.stats.InstanceStats()
        self.function_id = str(uuid.uuid4())
        self._secrets_provider = secrets_provider
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.failure: BaseException | None = None
        self._consumer: Any = None
        self._raw: Any = None
        self._completions: deque[tuple[int, bool]] = deque()
        self._pending = hot.acks.PendingAcks()
        self._waiting: dict[int, list[Any]] = {}  # token -> [flushes left, all ok]
        self._dedupe = (
            hot.acks.DuplicateFilter()
            if spec.subscription_type == "FAILOVER" and spec.processing_guarantees != "EFFECTIVELY_ONCE"
            else None
        )
        self._retries: dict[tuple[str, tuple[int, int, int]], int] = {}
        self._next_minute = time.monotonic() + 60.0
        self.effectively_once = spec.processing_guarantees == "EFFECTIVELY_ONCE"
        self.producers = ProducerPool(
            client, spec.producer, f"{spec.fqfn}:{instance_id}", named=self.effectively_once
        )
        self._committed: dict[str, str] = {}
        self._progress: dict[str, PartitionProgress] = {}
        self._gaps: dict[str, tuple[Any, float]] = {}
        self.inputs_read_back = 0
        self._last_input_at = time.monotonic()
        self._tail_checked_at = 0.0
        self._doomed: dict[tuple[str, tuple[int, int, int]], str] = {}
        self._consumers: dict[str, Any] = {}
        self._resubscribe_at = 0.0
        self.state_buffer = hot.counters.StateBuffer()
        self.dead_lettered = 0
        self.duplicates_dropped = 0

    # -- lifecycle ---------------------------------------------------------------
    def _subscribe(self) -> Any:
        spec = self.spec
        topics = [i.topic for i in spec.inputs if not i.is_regex_pattern]
        patterns = [i.topic for i in spec.inputs if i.is_regex_pattern]
        if patterns and topics:
            raise ValueError("a function cannot mix topicsPattern with explicit inputs yet")
        queue = max((i.receiver_queue_size or 0 for i in spec.inputs), default=0) or max(
            1000, self.options.batch_max_messages
        )
        props = {
            "application": "magnetar",
            "id": spec.fqfn,
            "instance_id": str(self.instance_id),
        }
        for i in spec.inputs:
            props.update(i.consumer_properties)
        kwargs: dict[str, Any] = dict(
            consumer_type=_CONSUMER_TYPES[spec.subscription_type],
            initial_position=(
                pulsar.InitialPosition.Earliest
                if spec.subscription_position == "Earliest"
                else pulsar.InitialPosition.Latest
            ),
            receiver_queue_size=queue,
            consumer_name=f"{spec.fqfn}:{self.instance_id}",
            negative_ack_redelivery_delay_ms=spec.timeout_ms or self.options.nack_delay_ms,
            properties=props,
            batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(
                self.options.batch_max_messages, -1, self.options.batch_timeout_ms
            ),
        )
        if spec.timeout_ms and spec.timeout_ms >= 10000:
            kwargs["unacked_messages_timeout_ms"] = spec.timeout_ms
        if patterns:
            import re

            return self.client.subscribe(re.compile(patterns[0]), spec.subscription_name, **kwargs)
        return self.client.subscribe(
            topics if len(topics) > 1 else topics[0], spec.subscription_name, **kwargs
        )

    def _build(self) -> None:
        spec, hot = self.spec, self.hot
        if self.effectively_once:
            self._restore_positions()
            self._warn_outputs_at_least_once()
        self._consumer = self._subscribe()
        self._raw = self._consumer._consumer
        log_producer = self.producers.get(spec.log_topic) if spec.log_topic else None
        logger = function_logger(spec.fqfn, self.instance_id, log_producer, spec.log_level)
        self._consumers = consumers = {i.topic: self._consumer for i in spec.inputs}
        self.context = InstanceContext(
            hot=hot,
            tenant=spec.tenant,
            namespace=spec.namespace,
            name=spec.name,
            function_id=self.function_id,
            function_version=self.options.function_version,
            instance_id=self.instance_id,
            input_topics=[i.topic for i in spec.inputs],
            output_topic=spec.output,
            output_serde_class_name=spec.output_serde_class_name,
            pulsar_client=self.client,
            user_config=spec.user_config,
            secrets=spec.secrets,
            secrets_provider=self._secrets_provider,
            logger=logger,
            stats=self.stats,
            producers=self.producers,
            state_store=self.state_store,
            state_buffer=self.state_buffer,
            consumers=consumers,
        )
        patterns = [i for i in spec.inputs if i.is_regex_pattern]
        if patterns:  # topics are discovered at run time: one codec for all of them
            codecs: dict[str, Any] = {}
            default_codec = codec_for(hot, patterns[0].serde_class_name, patterns[0].schema_type)
        else:
            codecs = {i.topic: codec_for(hot, i.serde_class_name, i.schema_type) for i in spec.inputs}
            default_codec = hot.serde.Codec(hot.serde.KIND_IDENTITY)
        output_codec = sender = None
        if spec.output:
            output_codec = codec_for(hot, spec.output_serde_class_name, spec.output_schema_type)
            sender = hot.batching.OutputSender(
                self.producers.raw(spec.output),
                _pulsar.MessageBuilder,
                input_properties=self.options.input_message_properties,
                forward_properties=spec.forward_source_message_property,
                sequence_ids=self.effectively_once,
            )
        self.dispatcher = hot.dispatch.Dispatcher(
            self.function.call,
            self.function.pass_context,
            self.context,
            codecs,
            default_codec,
            output_codec,
            sender,
            self.stats,
            spec.timeout_ms or 0,
        )

    def start(self, wait: float = 30.0) -> None:
        """Subscribe, create producers and start the loop thread; raises if that fails."""
        self._thread = threading.Thread(
            target=self._run, name=f"instance-{self.spec.fqfn}:{self.instance_id}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(wait):
            raise TimeoutError(f"instance {self.spec.fqfn}:{self.instance_id} did not start within {wait}s")
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        """Stop after the current batch, wait for in-flight outputs, close everything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.options.stop_grace_s + 5.0)

    @property
    def failure_text(self) -> str:
        """Why the loop stopped, as ``Type: message``; empty while it has not failed."""
        return "" if self.failure is None else f"{type(self.failure).__name__}: {self.failure}"

    def is_alive(self) -> bool:
        """True while the loop thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._build()
        except BaseException as exc:
            self.failure = exc
            self._started.set()
            self._close()
            return
        self._started.set()
        idle = False
        try:
            while not self._stop.is_set():
                self._drain_completions()
                if self._resubscribe_at and time.monotonic() >= self._resubscribe_at and not self._waiting:
                    self._resubscribe()
                if self.effectively_once:
                    self._check_gaps()
                raw = self._raw
                try:
                    if idle and not self._waiting:
                        # Nothing arrived last time and nothing is in flight: block for the
                        # first message instead of polling every batch timeout.
                        first = self._receive_one(raw)
                        msgs = [first, *raw.batch_receive()] if first is not None else []
                    else:
                        msgs = list(raw.batch_receive())
                except Exception as exc:  # the client reports a closed consumer this way
                    if self._stop.is_set():
                        break
                    log.warning("%s:%s receive failed: %s", self.spec.fqfn, self.instance_id, exc)
                    time.sleep(0.1)
                    continue
                idle = not msgs
                if msgs:
                    self._last_input_at = time.monotonic()
                    self.process_batch(msgs)
                if time.monotonic() >= self._next_minute:
                    self.stats.roll_minute()
                    self._next_minute += 60.0
        except BaseException as exc:
            self.failure = exc
            log.exception("instance %s:%s crashed", self.spec.fqfn, self.instance_id)
        finally:
            self._shutdown()

    _IDLE_WAIT_MS = 100

    def _receive_one(self, raw: Any) -> Any:
        """One message, or ``None`` after waiting ``_IDLE_WAIT_MS``."""
        try:
            return raw.receive(self._IDLE_WAIT_MS)
        except pulsar.Timeout:
            return None

    def process_batch(self, msgs: list[Any]) -> None:
        """Run one received batch through the hot path and settle every message of it."""
        if self.effectively_once:
            self._process_effectively_once(msgs)
            return
        acks = self.hot.acks
        consumer = self._raw
        guarantee = self.spec.processing_guarantees
        if self._dedupe is not None:
            msgs, dups = self._dedupe.admit(msgs)
            if dups:
                self.duplicates_dropped += len(dups)
                acks.ack_messages(consumer, dups)
            if not msgs:
                return
        if guarantee == "ATMOST_ONCE":
            acks.ack_messages(consumer, msgs)
        outcome = self.dispatcher.run(msgs)
        if not self.state_buffer.is_empty():
            deltas, resets, values = self.state_buffer.drain()
            try:
                self._state_commit(deltas, resets, values)
            except Exception as exc:
                text = f"state commit failed: {type(exc).__name__}: {exc}"
                for _ in msgs:
                    self.stats.add_system_exception(text)
                if guarantee != "ATMOST_ONCE":
                    self._nack(consumer, msgs)
                self._flush(None)
                return
        for index, _kind, text in outcome.failed:
            self._fail(consumer, msgs[index], text, guarantee)
        if outcome.sent:
            self.producers.touch(self.spec.output)  # type: ignore[arg-type]
        if guarantee == "ATMOST_ONCE" or guarantee == "MANUAL" or not self.spec.auto_ack:
            self._flush(None)
            return
        if self.producers.touched_count() == 0:
            if outcome.done:
                acks.ack_messages(consumer, msgs, outcome.done)
            return
        if outcome.sent and not outcome.done:
            parked = [msgs[i] for i in outcome.sent]
        else:  # context.publish output may ride with "done" inputs: ack all after the flush
            parked = [msgs[i] for i in sorted(outcome.sent + outcome.done)]
        self._flush(parked)

    def _state_commit(
        self, deltas: dict[str, int], resets: set[str], values: dict[str, bytes | None]
    ) -> None:
        assert self.state_store is not None
        self.state_store.commit(f"{self.spec.fqfn}", deltas, resets, values)

    def _flush(self, parked: list[Any] | None) -> None:
        """Flush the producers used by this batch; ack ``parked`` once all report success."""
        count = self.producers.touched_count()
        if count == 0:
            if parked:
                self.hot.acks.ack_messages(self._raw, parked)
            return
        if parked:
            token = self._pending.add(self._raw, parked)
            self._waiting[token] = [count, True]
        else:
            token = -1
        completions = self._completions
        self.producers.flush_touched(lambda ok: completions.append((token, ok)))

    def _drain_completions(self) -> None:
        completions = self._completions
        while completions:
            token, ok = completions.popleft()
            if token < 0:
                continue
            state = self._waiting.get(token)
            if state is None:
                continue
            state[0] -= 1
            state[1] = state[1] and ok
            if state[0] == 0:
                del self._waiting[token]
                if not state[1]:
                    self.stats.add_system_exception("publishing outputs failed; inputs will be redelivered")
                    if self._dedupe is not None:
                        self._dedupe.mark_failed(self._pending.peek(token))
                self._pending.complete(token, state[1])
        callbacks = self.context.callbacks if hasattr(self, "context") else None
        while callbacks:
            callback, result, msg_id = callbacks.popleft()
            try:
                callback(result, msg_id)
            except Exception:
                log.exception("publish callback of %s raised", self.spec.fqfn)

    def _nack(self, consumer: Any, msgs: list[Any]) -> None:
        if self._dedupe is not None:
            self._dedupe.mark_failed(msgs)
        self.hot.acks.nack_messages(consumer, msgs)
        if self.spec.subscription_type == "FAILOVER" and not self._resubscribe_at:
            # pulsar-lite ignores negative acks on Failover subscriptions: reopen the
            # consumer after the redelivery delay, once nothing is in flight.
            delay = (self.spec.timeout_ms or self.options.nack_delay_ms) / 1000.0
            self._resubscribe_at = time.monotonic() + delay

    def _resubscribe(self) -> None:
        """Reopen the input consumer, so the broker delivers every unacked input again, in order.

        Negative acks and redelivery requests are ignored by pulsar-lite on Exclusive and
        Failover subscriptions; a new consumer gets the unacked inputs on every broker.
        """
        self._resubscribe_at = 0.0
        try:
            self._consumer.close()
        except Exception:
            pass
        self._consumer = self._subscribe()
        self._raw = self._consumer._consumer
        for topic in self._consumers:
            self._consumers[topic] = self._consumer

    def _fail(self, consumer: Any, msg: Any, text: str, guarantee: str) -> None:
        """Retry a failed message, or dead-letter it once its retries are used up."""
        if guarantee == "ATMOST_ONCE":
            return  # acked on receipt; the failure is counted, as Apache does
        if self._may_retry(msg):
            self._nack(consumer, [msg])
            return
        self._dead_letter(consumer, msg, text)

    def _may_retry(self, msg: Any) -> bool:
        """Count one more attempt of ``msg``; false once ``maxMessageRetries`` are used up."""
        retries = self.spec.max_message_retries
        if retries is None:
            return True
        key = (msg.topic_name(), self.hot.acks.position_of(msg))
        attempts = max(msg.redelivery_count(), self._retries.get(key, 0))
        if attempts < retries:
            self._retries[key] = attempts + 1
            return True
        self._retries.pop(key, None)
        return False

    def _dead_letter_topic(self, msg: Any) -> str:
        if self.spec.dead_letter_topic:
            return self.spec.dead_letter_topic
        return f"{msg.topic_name()}-{self.spec.subscription_name.replace('/', '-')}-DLQ"

    def _send_dead_letter(self, msg: Any, text: str) -> Any:
        """Queue ``msg`` on its dead-letter topic; returns the producer, or ``None`` if that failed."""
        topic = self._dead_letter_topic(msg)
        props = dict(msg.properties())
        props[DLQ_ERROR_PROPERTY] = text[-2000:]
        props["__pfn_input_topic__"] = msg.topic_name()
        props["__pfn_input_msg_id__"] = base64.b64encode(msg.message_id().serialize()).decode("ascii")
        props["__pfn_redelivery_count__"] = str(msg.redelivery_count())
        producer = self.producers.get(topic)
        key = msg.partition_key() or None
        try:
            producer.send_async(msg.data(), None, properties=props, partition_key=key)
        except Exception as exc:
            self.stats.add_system_exception(f"dead-lettering to {topic} failed: {exc}")
            return None
        return producer

    def _dead_letter(self, consumer: Any, msg: Any, text: str) -> None:
        producer = self._send_dead_letter(msg, text)
        if producer is None:
            self._nack(consumer, [msg])
            return
        self.dead_lettered += 1
        token = self._pending.add(consumer, [msg])
        self._waiting[token] = [1, True]
        completions = self._completions
        producer._producer.flush_async(lambda result: completions.append((token, result == pulsar.Result.Ok)))

    # -- EFFECTIVELY_ONCE ------------------------------------------------------------
    def _restore_positions(self) -> None:
        if self.state_store is None:
            raise ValueError("EFFECTIVELY_ONCE needs a state store (--state-storage-url)")
        self._committed = self.state_store.get_positions(self.spec.fqfn)
        self._progress = {t: PartitionProgress.decode(text) for t, text in self._committed.items()}

    def _warn_outputs_at_least_once(self) -> None:
        if self.options.broker_deduplication is not True:
            where = (
                "this broker (pulsar-lite) does not de-duplicate producers, so outputs are at-least-once"
                if self.options.broker_deduplication is False
                else "unless the broker de-duplicates producers (Apache Pulsar: brokerDeduplicationEnabled), "
                "outputs are at-least-once"
            )
            log.warning(
                "%s:%s is EFFECTIVELY_ONCE: state changes apply exactly once and outputs carry sequence "
                "ids derived from the input positions, but %s (consumers can drop repeats by sequence id)",
                self.spec.fqfn,
                self.instance_id,
                where,
            )

    #: Seconds an input gap may last before the missing inputs are read back from the topic.
    GAP_REPAIR_AFTER_S = 2.0

    def _check_gaps(self) -> None:
        """Read back inputs the broker never redelivered (see :meth:`_repair_gap`).

        A gap between applied inputs that lasts :attr:`GAP_REPAIR_AFTER_S` is read back.
        So is the tail of a single input topic that holds messages past the mark while
        nothing has arrived for as long and no other instance moved the committed progress
        since the last check (a subscription the broker stopped serving).
        """
        now = time.monotonic()
        for topic, p in list(self._progress.items()):
            if not p.above:
                self._gaps.pop(topic, None)
                continue
            mark, since = self._gaps.get(topic, (None, now))
            if mark != p.mark:
                self._gaps[topic] = (p.mark, now)
            elif now - since >= self.GAP_REPAIR_AFTER_S:
                self._gaps[topic] = (p.mark, now)
                self._repair_gap(topic, p, min(p.above))
        if (
            len(self._progress) == 1
            and now - self._last_input_at >= self.GAP_REPAIR_AFTER_S
            and now - self._tail_checked_at >= self.GAP_REPAIR_AFTER_S
        ):
            self._tail_checked_at = now
            ((topic, p),) = self._progress.items()
            if p.above or p.mark is None:
                return
            # Another instance of the function (the active consumer, when this one is a
            # standby) may be making the progress: read back only what nobody applies.
            assert self.state_store is not None
            try:
                stored = self.state_store.get_positions(self.spec.fqfn).get(topic)
            except StateStoreError:
                return
            if stored is not None and stored != self._committed.get(topic):
                self._committed[topic] = stored
                self._progress[topic] = PartitionProgress.decode(stored)
                return
            try:
                last = self._raw.get_last_message_id()
            except Exception:  # a multi-topic consumer cannot tell; its gaps are still repaired
                return
            if (last.ledger_id(), last.entry_id()) > (p.mark[0], p.mark[1]):
                self._repair_gap(topic, p, None)

    def _repair_gap(self, topic: str, p: PartitionProgress, upto: tuple[int, int, int] | None) -> None:
        """Apply the inputs after the mark and before ``upto`` (``None``: to the topic's end).

        They were delivered to a consumer that died and, on pulsar-lite, may never be
        delivered again (on Apache Pulsar they come back, and this never runs). A reader
        fetches them from the topic; they are processed like any batch.
        """
        assert p.mark is not None
        ledger, entry, _batch, _size = p.mark
        start = pulsar.MessageId(-1, ledger, entry - 1, -1) if entry > 0 else pulsar.MessageId.earliest
        found: list[Any] = []
        total = 0
        reader = self.client.create_reader(topic, start, receiver_queue_size=1000)
        try:
            raw_reader = reader._reader
            while not self._stop.is_set():
                try:
                    msg = raw_reader.read_next(1000)
                except Exception:  # the client reports the end of what is there as a timeout
                    break
                pos = position_with_size(msg)
                if upto is not None and (pos[0], pos[1], pos[2]) >= upto:
                    break
                if not self._progress[topic].applied(pos):
                    found.append(msg)
                if len(found) >= self.options.batch_max_messages:
                    total += len(found)
                    self._read_back(topic, found)
                    found = []
            if found:
                total += len(found)
                self._read_back(topic, found)
        finally:
            reader.close()
        if total:
            log.warning(
                "%s:%s: %d inputs of %s after %s were never delivered again; read them back from the topic",
                self.spec.fqfn,
                self.instance_id,
                total,
                topic,
                p.mark,
            )

    def _read_back(self, topic: str, msgs: list[Any]) -> None:
        self.inputs_read_back += len(msgs)
        self._process_effectively_once(msgs, acknowledge=False)

    def _process_effectively_once(self, msgs: list[Any], acknowledge: bool = True) -> None:
        """One batch, settled as a whole.

        Inputs already applied (by the committed progress of their partition, see
        :mod:`engine.instance.progress`) are skipped and acked. The outputs (and dead
        letters) of the batch are flushed and confirmed first; then its state changes and
        the new progress of each partition commit in one transaction; then the inputs are
        acked. If anything fails before the commit, the state changes are dropped and the
        consumer is reopened, so every unacked input arrives again.
        """
        acks, consumer = self.hot.acks, self._raw
        assert self.state_store is not None
        progress = self._progress
        fresh: list[Any] = []
        dups: list[Any] = []
        seen: dict[str, list[Any]] = {}  # topic -> positions admitted in this batch
        admitted: set[tuple[str, Any]] = set()
        for msg in msgs:
            topic = msg.topic_name()
            pos = position_with_size(msg)
            known = progress.get(topic)
            if (known is not None and known.applied(pos)) or (topic, pos) in admitted:
                dups.append(msg)
            else:
                admitted.add((topic, pos))
                seen.setdefault(topic, []).append(pos)
                fresh.append(msg)
        if dups:
            self.duplicates_dropped += len(dups)
            if acknowledge:
                acks.ack_messages(consumer, dups)
        msgs = fresh
        if not msgs:
            return
        # A message whose retries are used up is not run again: its partial state changes
        # must not commit. It is dead-lettered with the batch it arrives in.
        doomed = self._doomed
        dead = [m for m in msgs if (m.topic_name(), acks.position_of(m)) in doomed] if doomed else []
        run = [m for m in msgs if (m.topic_name(), acks.position_of(m)) not in doomed] if dead else msgs
        outcome = self.dispatcher.run(run)
        for index, _kind, text in outcome.failed:
            msg = run[index]
            if not self._may_retry(msg):
                doomed[(msg.topic_name(), acks.position_of(msg))] = text
                self._rewind(delay=False)
            else:
                self._rewind(delay=True)
            return
        if outcome.sent:
            self.producers.touch(self.spec.output)  # type: ignore[arg-type]
        for msg in dead:
            if self._send_dead_letter(msg, doomed[(msg.topic_name(), acks.position_of(msg))]) is None:
                self._rewind(delay=True)
                return
            self.producers.touch(self._dead_letter_topic(msg))
        if not self._flush_and_wait():
            self.stats.add_system_exception("publishing outputs failed; the batch is processed again")
            self._rewind(delay=True)
            return
        updated = {
            topic: progress.get(topic, PartitionProgress()).with_applied(positions)
            for topic, positions in seen.items()
            if positions
        }
        encoded = {topic: p.encode() for topic, p in updated.items()}
        moves = {topic: (self._committed.get(topic), text) for topic, text in encoded.items()}
        deltas, resets, values = self.state_buffer.drain()
        try:
            self.state_store.commit(self.spec.fqfn, deltas, resets, values, moves)
        except StateStoreError as exc:
            self.stats.add_system_exception(f"state commit failed: {exc}")
            if isinstance(exc, StateConflict):
                self._restore_positions()
            self._rewind(delay=not isinstance(exc, StateConflict))
            return
        self._committed.update(encoded)
        progress.update(updated)
        self.dead_lettered += len(dead)
        for msg in dead:
            doomed.pop((msg.topic_name(), acks.position_of(msg)), None)
        if acknowledge:
            acks.ack_messages(consumer, msgs)

    def _flush_and_wait(self, timeout: float = 60.0) -> bool:
        """Flush the producers this batch used and wait until all report; true if all persisted."""
        count = self.producers.touched_count()
        if count == 0:
            return True
        results: list[bool] = []
        done = threading.Event()

        def on_flushed(ok: bool) -> None:  # client thread: hand over only
            results.append(ok)
            if len(results) == count:
                done.set()

        self.producers.flush_touched(on_flushed)
        return done.wait(timeout) and all(results)

    def _rewind(self, delay: bool) -> None:
        """Drop the batch's state changes and have every unacked input delivered again, in order."""
        self.state_buffer.drain()
        if delay:
            self._stop.wait((self.spec.timeout_ms or self.options.nack_delay_ms) / 1000.0)
        self._resubscribe()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.options.stop_grace_s
        self.producers.flush_all()
        while self._waiting and time.monotonic() < deadline:
            self._drain_completions()
            time.sleep(0.01)
        self._drain_completions()
        self._close()

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:
                pass
        self.producers.close()

    # -- status ------------------------------------------------------------------------
    def status_proto(self, worker_id: str = "") -> Any:
        """Apache's ``FunctionStatus`` message for this instance."""
        from engine.instance.status import function_status

        return function_status(
            self.stats.snapshot(),
            instance_id=self.instance_id,
            running=self.is_alive() and self.failure is None,
            failure=self.failure_text,
            worker_id=worker_id,
            dead_lettered=self.dead_lettered,
            duplicates_dropped=self.duplicates_dropped,
        )

    def metrics_proto(self) -> Any:
        """Apache's ``MetricsData`` message for this instance."""
        from engine.instance.status import metrics_data

        return metrics_data(self.stats.snapshot())

    def status(self) -> dict[str, Any]:
        """Apache's FunctionStatus fields for this instance, as a dict."""
        from engine.instance.status import status_dict

        return status_dict(self.status_proto())
