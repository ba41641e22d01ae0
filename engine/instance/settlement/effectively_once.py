"""EFFECTIVELY_ONCE: a batch's state changes and input progress commit in one transaction.

Each batch runs as a unit on a Failover subscription. Inputs already applied (by the
committed progress of their partition, see :mod:`engine.instance.progress`) are skipped
and acknowledged. The outputs (and dead letters) of the batch are flushed and confirmed
first; then its state changes and the new progress of each partition commit in one
transaction; then the inputs are acknowledged. If anything fails before the commit,
the state changes are dropped and every unacknowledged input is delivered again, in
order. Outputs carry sequence ids derived from their input's position, so a broker
that de-duplicates producers drops repeats.

Where the broker may never redeliver what a killed consumer held (pulsar-lite), the
progress's gaps are read back from the topic (:mod:`engine.instance.settlement.gaps`).
"""

from __future__ import annotations

import logging
from typing import Any

from engine.instance.progress import PartitionProgress, position_with_size
from engine.instance.settlement.base import Settlement, SettlementParts
from engine.instance.settlement.flushes import FlushTracker
from engine.instance.settlement.gaps import GapRepair, NoGapRepair, ReadBackGaps
from engine.instance.settlement.store_health import StoreHealth
from engine.state.store import StateConflict, StateStore, StateStoreError

__all__ = ["EffectivelyOnce"]

log = logging.getLogger(__name__)


class EffectivelyOnce(Settlement):
    """Commit state and input progress together; replay the batch on any failure."""

    def __init__(self, parts: SettlementParts) -> None:
        super().__init__(parts)
        if parts.state_store is None:
            raise ValueError("EFFECTIVELY_ONCE needs a state store (--state-storage-url)")
        self.store: StateStore = parts.state_store
        self.flushes = FlushTracker(parts.hot, parts.producers, parts.stats, lambda _msgs, _ok: None)
        self._position_of = parts.hot.acks.position_of
        self._state_buffer = parts.state_buffer
        self.store_health = StoreHealth(parts.spec.fqfn, log)
        self._committed: dict[str, str] = {}
        self.progress: dict[str, PartitionProgress] = {}
        #: Inputs whose retries are used up, with their last error: dead-lettered, never run again.
        self._doomed: dict[tuple[str, tuple[int, int, int]], str] = {}
        self.gaps: GapRepair = (
            ReadBackGaps(self, parts)
            if parts.capabilities.killed_consumer_may_lose_unacked
            else NoGapRepair()
        )

    # -- start-up ------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the committed progress (blocking) and say what the outputs' guarantee is."""
        self.restore()
        self._warn_outputs_at_least_once()

    def restore(self) -> None:
        """Load the committed progress of every input partition (blocking)."""
        self._committed = self.store.get_positions(self.spec.fqfn)
        self.progress = {t: PartitionProgress.decode(text) for t, text in self._committed.items()}

    def _warn_outputs_at_least_once(self) -> None:
        dedup = self.parts.capabilities.producer_deduplication
        if dedup is True:
            return
        where = (
            "this broker (pulsar-lite) does not de-duplicate producers, so outputs are at-least-once"
            if dedup is False
            else "unless the broker de-duplicates producers (Apache Pulsar: brokerDeduplicationEnabled), "
            "outputs are at-least-once"
        )
        log.warning(
            "%s is EFFECTIVELY_ONCE: state changes apply exactly once and outputs carry sequence "
            "ids derived from the input positions, but %s (consumers can drop repeats by sequence id)",
            self.spec.fqfn,
            where,
        )

    def committed(self, topic: str) -> str | None:
        """The committed progress text of ``topic`` as this instance knows it."""
        return self._committed.get(topic)

    def adopt(self, topic: str, stored: str) -> None:
        """Take progress another instance committed for ``topic``."""
        self._committed[topic] = stored
        self.progress[topic] = PartitionProgress.decode(stored)

    # -- the loop ------------------------------------------------------------------------------
    def poll(self) -> None:
        self.gaps.check()
        super().poll()

    def settle(self, msgs: list[Any]) -> None:
        self.gaps.note_input()
        self.process(msgs, acknowledge=True)

    def reject(self, msg: Any, text: str) -> None:
        self._doomed[(msg.topic_name(), self._position_of(msg))] = text
        self.process([msg], acknowledge=True)

    def process(self, msgs: list[Any], acknowledge: bool) -> None:
        """Settle one batch as a whole (``acknowledge`` false for inputs read back from the topic)."""
        position_of = self._position_of
        progress = self.progress
        fresh: list[Any] = []
        dups: list[Any] = []
        repeats = 0
        seen: dict[str, list[Any]] = {}  # topic -> positions admitted in this batch
        admitted: set[tuple[str, Any]] = set()
        for msg in msgs:
            topic = msg.topic_name()
            pos = position_with_size(msg)
            known = progress.get(topic)
            if known is not None and known.applied(pos):
                dups.append(msg)
            elif (topic, pos) in admitted:
                # The same input twice in one batch (pulsar-lite may hand an entry out
                # again at once): it is settled with its first copy. Acking the copy now
                # would ack that input before it is applied, and a failed batch would
                # then never be delivered again.
                repeats += 1
            else:
                admitted.add((topic, pos))
                seen.setdefault(topic, []).append(pos)
                fresh.append(msg)
        self.duplicates_dropped += len(dups) + repeats
        if dups and acknowledge:
            self.inputs.ack(dups)
        msgs = fresh
        if not msgs:
            return
        # An input whose retries are used up is not run again: its partial state changes
        # must not commit. It is dead-lettered with the batch it arrives in.
        doomed = self._doomed
        dead = [m for m in msgs if (m.topic_name(), position_of(m)) in doomed] if doomed else []
        run = [m for m in msgs if (m.topic_name(), position_of(m)) not in doomed] if dead else msgs
        outcome = self.dispatcher.run(run)
        for index, _kind, text in outcome.failed:
            msg = run[index]
            if not self.retries.may_retry(msg):
                doomed[(msg.topic_name(), position_of(msg))] = text
                self._rewind(delay=False)
            else:
                self._rewind(delay=True)
            return
        if outcome.sent:
            self.producers.touch(self.spec.output)  # type: ignore[arg-type]
        for msg in dead:
            topic = self.dead_letters.send(msg, doomed[(msg.topic_name(), position_of(msg))])
            if topic is None:
                self._rewind(delay=True)
                return
            self.producers.touch(topic)
        if not self.flushes.flush_and_wait():
            self.stats.add_system_exception("publishing outputs failed; the batch is processed again")
            self._rewind(delay=True)
            return
        if not self._commit(seen):
            return
        self.dead_letters.count += len(dead)
        for msg in dead:
            doomed.pop((msg.topic_name(), position_of(msg)), None)
        self.retries.forget(msgs)
        if acknowledge:
            self.inputs.ack(msgs)

    def _commit(self, seen: dict[str, list[Any]]) -> bool:
        progress = self.progress
        updated = {
            topic: progress.get(topic, PartitionProgress()).with_applied(positions)
            for topic, positions in seen.items()
            if positions
        }
        encoded = {topic: p.encode() for topic, p in updated.items()}
        moves = {topic: (self._committed.get(topic), text) for topic, text in encoded.items()}
        deltas, resets, values = self._state_buffer.drain()
        try:
            self.store.commit(self.spec.fqfn, deltas, resets, values, moves)
        except StateStoreError as exc:
            self.stats.add_system_exception(f"state commit failed: {exc}")
            conflict = isinstance(exc, StateConflict)
            if conflict:  # another instance moved the progress: start from what it committed
                self.restore()
            else:
                self.store_health.failed(str(exc))
            self._rewind(delay=not conflict)
            return False
        self.store_health.committed()
        self._committed.update(encoded)
        progress.update(updated)
        return True

    def _rewind(self, delay: bool) -> None:
        """Drop the batch's state changes and have every unacked input delivered again, in order."""
        self._state_buffer.drain()
        if delay:
            self.parts.stopping.wait(self.inputs.nack_delay_ms / 1000.0)
        self.inputs.redeliver_unacked()
