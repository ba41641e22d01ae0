"""ATLEAST_ONCE and MANUAL: an input is acknowledged only after what it produced is persisted.

For each batch: the dispatcher runs it; the batch's state changes commit in one
transaction (a failed commit fails the whole batch: negatively acknowledged, never
acknowledged); each failed input is retried (negative ack) or, once its
``maxMessageRetries`` are used up, dead-lettered and acknowledged after the dead
letter is persisted; inputs with nothing in flight are acknowledged now, the others
once one ``flush_async`` per producer used reports them persisted.

MANUAL (and ``autoAck`` false) is the same with acknowledgements left to the
function's ``context.ack``.

On an ordered subscription of a broker that delivers already-acknowledged entries
again (pulsar-lite), a :class:`DuplicateFilter` drops them before they run twice.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.instance.settlement.base import Settlement, SettlementParts
from engine.instance.settlement.flushes import FlushTracker
from engine.instance.settlement.store_health import StoreHealth

__all__ = ["AtLeastOnce", "duplicate_filter_for"]

log = logging.getLogger(__name__)


def duplicate_filter_for(parts: SettlementParts) -> Any:
    """A duplicate filter where the broker may redeliver acked entries on an ordered subscription."""
    caps = parts.capabilities
    if parts.spec.subscription_type == "FAILOVER" and caps.duplicates_on_ordered:
        caps.workaround(
            "drop-redelivered-entries",
            "Failover/Exclusive consumers may receive acked entries again; they are dropped by position",
        )
        return parts.hot.acks.DuplicateFilter()
    return None


class AtLeastOnce(Settlement):
    """Acknowledge after persistence; retry, then dead-letter, what failed.

    Parameters
    ----------
    parts
        The instance's parts.
    auto_ack
        False for MANUAL (or ``autoAck: false``): the function acknowledges.
    """

    def __init__(self, parts: SettlementParts, auto_ack: bool = True) -> None:
        super().__init__(parts)
        self.auto_ack = auto_ack
        self._dedupe = duplicate_filter_for(parts)
        self.flushes = FlushTracker(parts.hot, parts.producers, parts.stats, self._on_settled)
        self._state_buffer = parts.state_buffer
        self.store_health = StoreHealth(parts.spec.fqfn, log)
        self._output = parts.spec.output

    @property
    def busy(self) -> bool:
        return self.flushes.busy

    def poll(self) -> None:
        self.flushes.drain()
        super().poll()

    def _on_settled(self, msgs: list[Any], ok: bool) -> None:
        if ok:
            self.retries.forget(msgs)
        elif self._dedupe is not None:
            self._dedupe.mark_failed(msgs)

    def _admit(self, msgs: list[Any]) -> list[Any]:
        if self._dedupe is None:
            return msgs
        fresh, dups = self._dedupe.admit(msgs)
        if dups:
            self.duplicates_dropped += len(dups)
            unsettled = fresh + self.flushes.in_flight() if self.flushes.busy else fresh
            if unsettled:
                # A copy of an input admitted in this batch, or of one whose outputs are
                # still in flight, is settled with that input: acking the copy now would
                # ack the input before what it produced is persisted.
                position_of = self.parts.hot.acks.position_of
                held = {(m.topic_name(), position_of(m)) for m in unsettled}
                dups = [m for m in dups if (m.topic_name(), position_of(m)) not in held]
            if dups:
                self.inputs.ack(dups)
        return fresh

    def settle(self, msgs: list[Any]) -> None:
        msgs = self._admit(msgs)
        if not msgs:
            return
        outcome = self.dispatcher.run(msgs)
        if not self._state_buffer.is_empty() and not self._commit_state(msgs):
            return
        for index, _kind, text in outcome.failed:
            self._fail(msgs[index], text)
        if outcome.sent:
            self.producers.touch(self._output)  # type: ignore[arg-type]
        inputs = self.inputs
        if not self.auto_ack:
            self.flushes.flush(inputs.raw, None)
            return
        if self.producers.touched_count() == 0:
            if outcome.done:
                inputs.ack(msgs, outcome.done)
                self.retries.forget(msgs, outcome.done)
            return
        if outcome.sent and not outcome.done:
            parked = [msgs[i] for i in outcome.sent]
        else:  # context.publish output may ride with "done" inputs: ack all after the flush
            parked = [msgs[i] for i in sorted(outcome.sent + outcome.done)]
        self.flushes.flush(inputs.raw, parked)

    def _commit_state(self, msgs: list[Any]) -> bool:
        """Commit the batch's state changes; on failure fail the whole batch (false)."""
        deltas, resets, values = self._state_buffer.drain()
        store = self.parts.state_store
        assert store is not None  # the Context buffers state only with a store
        try:
            store.commit(self.spec.fqfn, deltas, resets, values)
        except Exception as exc:  # any store failure fails the batch; the text says which
            text = f"state commit failed: {type(exc).__name__}: {exc}"
            self.store_health.failed(text)
            for _ in msgs:
                self.stats.add_system_exception(text)
            self._nack(msgs)
            self.flushes.flush(self.inputs.raw, None)
            return False
        self.store_health.committed()
        return True

    def _nack(self, msgs: list[Any]) -> None:
        if self._dedupe is not None:
            self._dedupe.mark_failed(msgs)
        self.inputs.nack(msgs)

    def _fail(self, msg: Any, text: str) -> None:
        """Retry a failed input, or dead-letter it once its retries are used up."""
        if self.retries.may_retry(msg):
            self._nack([msg])
            return
        self.reject(msg, text)

    def reject(self, msg: Any, text: str) -> None:
        topic = self.dead_letters.send(msg, text)
        if topic is None:
            self._nack([msg])
            return
        self.dead_letters.count += 1
        self.flushes.flush_topic(self.inputs.raw, topic, [msg])

    def shutdown(self, deadline: float) -> None:
        super().shutdown(deadline)
        self.flushes.drain_until(deadline)
        self.run_callbacks()
