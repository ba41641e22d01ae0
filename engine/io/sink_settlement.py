"""Settlements of a sink: inputs are acknowledged only after the sink acked their records.

:class:`SinkAtLeastOnce` (ATLEAST_ONCE, and ATMOST_ONCE with acks on receipt) hands
each batch to ``Sink.write`` as :class:`~engine.io.api.SinkRecord` objects. A record's
``ack()``/``fail()`` may come from any thread: it is only appended to a deque there,
and applied on the instance thread once per loop turn. An acked record's input is
acknowledged; a failed one is retried (negative ack) and, once its retries are used
up, dead-lettered like a function's input (:class:`~engine.instance.settlement.AtLeastOnce`).

:class:`SinkEffectivelyOnce` is for a :class:`~engine.io.api.TransactionalSink`: the
batch's writes and the new progress of each input partition
(:class:`~engine.instance.progress.PartitionProgress`) commit in one transaction of
the sink's own system; inputs already applied are skipped. Where the broker may never
redeliver what a killed consumer held (pulsar-lite), inputs past the committed progress
are read back from the topic, as for functions (:mod:`engine.instance.settlement.gaps`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import pulsar

from engine.instance.progress import PartitionProgress, position_with_size
from engine.instance.settlement.at_least_once import AtLeastOnce
from engine.instance.settlement.base import Settlement, SettlementParts
from engine.instance.settlement.flushes import FlushTracker
from engine.instance.settlement.gaps import GAP_REPAIR_AFTER_S, GapRepair, NoGapRepair, ReadBackGaps
from engine.io.api import Sink, SinkRecord, TransactionalSink
from engine.state.store import StateConflict, StateStoreError

__all__ = ["SinkAtLeastOnce", "SinkEffectivelyOnce", "SinkStats", "records_of"]

log = logging.getLogger(__name__)


class SinkStats:
    """What a sink's status reports beyond the instance stats."""

    def __init__(self) -> None:
        self.written = 0
        self.last_error = ""
        self.last_error_at = 0


def records_of(
    msgs: list[Any], codec: Any, settle: Any, stats: Any, sink_stats: SinkStats
) -> tuple[list[SinkRecord], list[tuple[int, str]]]:
    """Decode ``msgs`` into records; also the ``(index, reason)`` of those that would not decode.

    ``codec`` is a hot-path codec (``decode(payload)``) or, for inputs whose decoding
    depends on the message (AVRO: its topic and schema version), an object with
    ``decode_message(msg)`` (:class:`~engine.io.avro_inputs.AvroInputs`).
    """
    records: list[SinkRecord] = []
    bad: list[tuple[int, str]] = []
    by_message = getattr(codec, "decode_message", None)
    decode = by_message if by_message is not None else codec.decode
    by_payload = by_message is None
    for index, msg in enumerate(msgs):
        data = msg.data()
        try:
            value = decode(data) if by_payload else decode(msg)
        except Exception as exc:  # any SerDe error fails this record alone; the text names it
            bad.append((index, f"decoding the input failed: {type(exc).__name__}: {exc}"))
            continue
        records.append(SinkRecord(value, data, msg, index, settle))
    stats.add_received(len(msgs))
    return records, bad


class _Batch:
    __slots__ = ("msgs", "remaining", "started")

    def __init__(self, msgs: list[Any]) -> None:
        self.msgs = msgs
        self.remaining = len(msgs)
        self.started = time.monotonic()


class _NoTailCheck:
    """The broker serves every input to a live consumer: nothing to check."""

    def note(self, msgs: list[Any]) -> None:
        return None

    def check(self, busy: bool) -> None:
        return None


class _ReopenOnUnservedTail:
    """Reopen the consumer when the input topic holds messages past the last one it was handed.

    On pulsar-lite a Shared subscription whose consumer was SIGKILLed may stop handing
    inputs to the consumer that replaced it, so a sink stalls with a backlog it never
    sees. With one instance on one input topic, every message past the newest one this
    consumer received is its own to receive; when none came for :data:`GAP_REPAIR_AFTER_S`
    and the topic holds more, a new consumer is handed the unacknowledged inputs again.
    """

    def __init__(self, parts: SettlementParts) -> None:
        self._parts = parts
        self._newest: tuple[int, int] | None = None
        self._last_input_at = time.monotonic()
        self._checked_at = 0.0
        self._reopened_for: tuple[tuple[int, int], tuple[int, int]] | None = None

    def note(self, msgs: list[Any]) -> None:
        """Remember the newest position of a received batch (its first and last message).

        A consumer of one topic is handed new messages in position order, so a batch's
        newest is its last message unless redeliveries of older ones follow it; the first
        is taken too for a batch that starts with new messages and ends with redelivered
        ones. Missing a newer message in the middle of such a batch costs at most one
        needless reopen after :data:`GAP_REPAIR_AFTER_S` without inputs.
        """
        self._last_input_at = time.monotonic()
        if not msgs:
            return
        ends = (msgs[0], msgs[-1]) if len(msgs) > 1 else (msgs[0],)
        for msg in ends:
            mid = msg.message_id()
            pos = (mid.ledger_id(), mid.entry_id())
            if self._newest is None or pos > self._newest:
                self._newest = pos

    def check(self, busy: bool) -> None:
        now = time.monotonic()
        if (
            busy
            or self._newest is None
            or now - self._last_input_at < GAP_REPAIR_AFTER_S
            or now - self._checked_at < GAP_REPAIR_AFTER_S
        ):
            return
        self._checked_at = now
        try:
            last = self._parts.inputs.last_message_id()
        except pulsar.PulsarException as exc:  # the broker is away: checked again later
            log.debug("%s: no last message id: %s", self._parts.spec.fqfn, exc)
            return
        tail = (last.ledger_id(), last.entry_id())
        if tail <= self._newest or self._reopened_for == (self._newest, tail):
            return  # all handed out, or a reopen for this very tail brought nothing new
        self._reopened_for = (self._newest, tail)
        self._parts.capabilities.workaround(
            "reopen-consumer-on-unserved-tail",
            "a Shared subscription may stop serving its backlog after a consumer was killed; "
            "a new consumer is handed it again",
        )
        log.warning(
            "%s: the input topic holds messages past %s up to %s that were never handed out; "
            "reopening the consumer",
            self._parts.spec.fqfn,
            self._newest,
            tail,
        )
        self._parts.inputs.reopen()


class SinkAtLeastOnce(AtLeastOnce):
    """Acknowledge an input once the sink acked its record; retry, then dead-letter, what failed."""

    def __init__(self, parts: SettlementParts, sink: Sink, codec: Any, sink_stats: SinkStats) -> None:
        super().__init__(parts, auto_ack=True)
        spec = parts.spec
        single = (
            spec.parallelism == 1
            and len(spec.inputs) == 1
            and not spec.inputs[0].is_regex_pattern
            and parts.capabilities.killed_consumer_may_lose_unacked
        )
        self._tail: _NoTailCheck | _ReopenOnUnservedTail = (
            _ReopenOnUnservedTail(parts) if single else _NoTailCheck()
        )
        self.sink = sink
        self.codec = codec
        self.sink_stats = sink_stats
        self.at_most_once = parts.spec.processing_guarantees == "ATMOST_ONCE"
        self._results: deque[tuple[int, int, str | None]] = deque()
        self._batches: dict[int, _Batch] = {}
        self._next_batch = 0

    @property
    def busy(self) -> bool:
        return bool(self._batches) or self.flushes.busy

    def _settler(self, batch_id: int) -> Any:
        results = self._results

        def settle(index: int, reason: str | None) -> None:  # any thread: hand over only
            results.append((batch_id, index, reason))

        return settle

    def settle(self, msgs: list[Any]) -> None:
        self._tail.note(msgs)
        msgs = self._admit(msgs)
        if not msgs:
            return
        if self.at_most_once:
            self.inputs.ack(msgs)
        batch_id = self._next_batch
        self._next_batch += 1
        self._batches[batch_id] = _Batch(msgs)
        settle = self._settler(batch_id)
        records, bad = records_of(msgs, self.codec, settle, self.stats, self.sink_stats)
        for index, reason in bad:
            settle(index, reason)
        if records:
            try:
                self.sink.write(records)
            except Exception as exc:  # the sink could not write the batch: every unsettled record fails
                text = f"{type(self.sink).__name__}.write failed: {type(exc).__name__}: {exc}"
                log.warning("%s: %s", self.spec.fqfn, text)
                for record in records:
                    settle(record.index, text)
        self._apply()

    def poll(self) -> None:
        self._apply()
        self._tail.check(self.busy)
        super().poll()

    def _apply(self) -> None:
        """Apply the records' acks and failures (instance thread)."""
        results = self._results
        if not results:
            return
        acked: list[Any] = []
        batches = self._batches
        while results:
            batch_id, index, reason = results.popleft()
            batch = batches.get(batch_id)
            if batch is None or batch.msgs[index] is None:  # settled twice: the first call wins
                continue
            msg = batch.msgs[index]
            batch.msgs[index] = None
            batch.remaining -= 1
            if reason is None:
                acked.append(msg)
            else:
                self._failed(msg, reason)
            if batch.remaining == 0:
                del batches[batch_id]
        if acked:
            self.sink_stats.written += len(acked)
            self.stats.add_successes(len(acked), 0.0)
            self.stats.set_last_invocation(int(time.time() * 1000))
            if not self.at_most_once:
                self.inputs.ack(acked)
                self.retries.forget(acked)

    def _failed(self, msg: Any, reason: str) -> None:
        self.stats.add_system_exception(reason)
        self.sink_stats.last_error = reason
        self.sink_stats.last_error_at = int(time.time() * 1000)
        if not self.at_most_once:
            self._fail(msg, reason)

    def shutdown(self, deadline: float) -> None:
        while self._batches and time.monotonic() < deadline:
            self._apply()
            time.sleep(0.01)  # records are acked from the sink's threads
        self._apply()
        super().shutdown(deadline)


class _SinkProgressStore:
    """The committed progress as gap repair reads it: from the sink's own system."""

    def __init__(self, sink: TransactionalSink) -> None:
        self._sink = sink

    def get_positions(self, namespace: str) -> dict[str, str]:
        try:
            return self._sink.committed_progress(namespace)
        except Exception as exc:  # the sink's system is unreachable: gap repair tries again later
            raise StateStoreError(f"reading the sink's committed progress failed: {exc}") from exc


class SinkEffectivelyOnce(Settlement):
    """Commit a batch's writes and its inputs' progress in one transaction of the sink."""

    def __init__(self, parts: SettlementParts, sink: Sink, codec: Any, sink_stats: SinkStats) -> None:
        super().__init__(parts)
        if not isinstance(sink, TransactionalSink):
            from engine.config.errors import ConfigError, ConfigProblem

            raise ConfigError(
                [
                    ConfigProblem(
                        "processingGuarantees",
                        "EFFECTIVELY_ONCE",
                        f"ATLEAST_ONCE or ATMOST_ONCE: {type(sink).__name__} cannot commit its writes "
                        "with the input position (the jdbc-* sinks can)",
                    )
                ]
            )
        self.sink: TransactionalSink = sink
        self.codec = codec
        self.sink_stats = sink_stats
        self.flushes = FlushTracker(parts.hot, parts.producers, parts.stats, lambda _msgs, _ok: None)
        self._committed: dict[str, str] = {}
        self.progress: dict[str, PartitionProgress] = {}
        self.store = _SinkProgressStore(sink)
        self.gaps: GapRepair = (
            ReadBackGaps(self, parts)  # type: ignore[arg-type]  # the same progress surface as EffectivelyOnce
            if parts.capabilities.killed_consumer_may_lose_unacked
            else NoGapRepair()
        )

    def start(self) -> None:
        self.restore()

    def committed(self, topic: str) -> str | None:
        """The committed progress text of ``topic`` as this instance knows it."""
        return self._committed.get(topic)

    def adopt(self, topic: str, stored: str) -> None:
        """Take progress another instance committed for ``topic``."""
        self._committed[topic] = stored
        self.progress[topic] = PartitionProgress.decode(stored)

    def poll(self) -> None:
        self.gaps.check()
        super().poll()

    def restore(self) -> None:
        """Load the progress committed with the sink's writes (blocking)."""
        self._committed = dict(self.sink.committed_progress(self.spec.fqfn))
        self.progress = {t: PartitionProgress.decode(text) for t, text in self._committed.items()}

    def settle(self, msgs: list[Any]) -> None:
        self.gaps.note_input()
        self.process(msgs, acknowledge=True)

    def process(self, msgs: list[Any], acknowledge: bool) -> None:
        """Write one batch as a whole (``acknowledge`` false for inputs read back from the topic)."""
        fresh: list[Any] = []
        dups: list[Any] = []
        repeats = 0
        seen: dict[str, list[Any]] = {}
        admitted: set[tuple[str, Any]] = set()
        for msg in msgs:
            topic = msg.topic_name()
            pos = position_with_size(msg)
            known = self.progress.get(topic)
            if known is not None and known.applied(pos):
                dups.append(msg)
            elif (topic, pos) in admitted:
                repeats += 1  # settled with its first copy; acking it now would ack an unwritten input
            else:
                admitted.add((topic, pos))
                seen.setdefault(topic, []).append(pos)
                fresh.append(msg)
        self.duplicates_dropped += len(dups) + repeats
        if dups and acknowledge:
            self.inputs.ack(dups)
        if not fresh:
            return
        records, bad = records_of(fresh, self.codec, lambda _i, _r: None, self.stats, self.sink_stats)
        if bad:
            self._failure(fresh, bad[0][1], acknowledge)
            return
        try:
            self._write(records, seen)
        except StateConflict:  # another instance moved the progress: start from what it committed
            self.restore()
            self._rewind(delay=False)
            return
        except Exception as exc:  # the sink's system failed the transaction: nothing was written
            text = f"{type(self.sink).__name__} transaction failed: {type(exc).__name__}: {exc}"
            self._failure(fresh, text, acknowledge)
            return
        self.sink_stats.written += len(records)
        self.stats.add_successes(len(records), 0.0)
        self.stats.set_last_invocation(int(time.time() * 1000))
        self.retries.forget(fresh)
        if acknowledge:
            self.inputs.ack(fresh)

    def _write(self, records: list[SinkRecord], seen: dict[str, list[Any]]) -> None:
        updated = {
            topic: self.progress.get(topic, PartitionProgress()).with_applied(positions)
            for topic, positions in seen.items()
        }
        encoded = {topic: p.encode() for topic, p in updated.items()}
        moves = {topic: (self._committed.get(topic), text) for topic, text in encoded.items()}
        self.sink.write_with_progress(records, self.spec.fqfn, moves)
        self._committed.update(encoded)
        self.progress.update(updated)

    def _failure(self, msgs: list[Any], text: str, acknowledge: bool) -> None:
        self.stats.add_system_exception(text)
        self.sink_stats.last_error = text
        self.sink_stats.last_error_at = int(time.time() * 1000)
        log.warning("%s: %s", self.spec.fqfn, text)
        if all(self.retries.may_retry(m) for m in msgs):
            self._rewind(delay=True)
            return
        self._one_by_one(msgs, acknowledge)

    def _one_by_one(self, msgs: list[Any], acknowledge: bool) -> None:
        """Retries used up: write each input alone; dead-letter those that still fail."""
        for msg in msgs:
            pos = position_with_size(msg)
            seen = {msg.topic_name(): [pos]}
            records, bad = records_of([msg], self.codec, lambda _i, _r: None, self.stats, self.sink_stats)
            try:
                if bad:
                    raise ValueError(bad[0][1])
                self._write(records, seen)
                self.sink_stats.written += 1
                continue
            except StateConflict:
                self.restore()
                self._rewind(delay=False)
                return
            except Exception as exc:  # this input alone fails: dead-letter it, then commit its position
                text = f"{type(exc).__name__}: {exc}"
            topic = self.dead_letters.send(msg, text)
            if topic is None:
                self._rewind(delay=True)
                return
            self.producers.touch(topic)
            if not self.flushes.flush_and_wait():
                self._rewind(delay=True)
                return
            try:
                self._write([], seen)
            except Exception as exc:  # the sink's system is gone: replay from the committed progress
                self._failure_text(f"committing a dead-lettered input's position failed: {exc}")
                self._rewind(delay=True)
                return
            self.dead_letters.count += 1
        self.retries.forget(msgs)
        if acknowledge:
            self.inputs.ack(msgs)

    def _failure_text(self, text: str) -> None:
        self.stats.add_system_exception(text)
        self.sink_stats.last_error = text

    def _rewind(self, delay: bool) -> None:
        if delay:
            self.parts.stopping.wait(self.inputs.nack_delay_ms / 1000.0)
        self.inputs.redeliver_unacked()
