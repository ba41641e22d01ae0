"""Reading back inputs a broker never delivers again (EFFECTIVELY_ONCE on pulsar-lite).

Messages handed to a consumer that is killed may never be delivered again by
pulsar-lite (``bench/repro/failover_consumer_kill.py``). An EFFECTIVELY_ONCE instance
then sees a gap in its progress that never closes, or a topic whose tail nobody
serves. :class:`ReadBackGaps` reads such inputs from the topic with a reader and
settles them like any batch. On a broker that redelivers (Apache Pulsar) the
settlement gets :class:`NoGapRepair`, and none of this runs.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import pulsar

from engine.broker.adapter import raw_reader
from engine.instance.progress import PartitionProgress, position_with_size
from engine.instance.settlement.base import SettlementParts
from engine.state.store import StateStoreError

if TYPE_CHECKING:
    from engine.instance.settlement.effectively_once import EffectivelyOnce

__all__ = ["GAP_REPAIR_AFTER_S", "GapRepair", "NoGapRepair", "ReadBackGaps"]

log = logging.getLogger(__name__)

#: Seconds an input gap may last before the missing inputs are read back from the topic.
GAP_REPAIR_AFTER_S = 2.0


class GapRepair(Protocol):
    """What the EFFECTIVELY_ONCE settlement asks of gap repair."""

    def note_input(self) -> None:
        """An input batch arrived."""

    def check(self) -> None:
        """Once per loop turn: repair gaps that lasted long enough."""


class NoGapRepair:
    """The broker redelivers what a killed consumer held: nothing to repair."""

    def note_input(self) -> None:
        return None

    def check(self) -> None:
        return None


class ReadBackGaps:
    """Read back gaps between applied inputs, and an idle topic's unserved tail, after a while."""

    def __init__(self, settlement: EffectivelyOnce, parts: SettlementParts) -> None:
        self._eo = settlement
        self._parts = parts
        self._gaps: dict[str, tuple[Any, float]] = {}
        self._last_input_at = time.monotonic()
        self._tail_checked_at = 0.0

    def note_input(self) -> None:
        self._last_input_at = time.monotonic()

    def check(self) -> None:
        """Read back gaps that lasted :data:`GAP_REPAIR_AFTER_S`.

        So is the tail of a single input topic that holds messages past the mark while
        nothing has arrived for as long and no other instance moved the committed progress
        since the last check (a subscription the broker stopped serving).
        """
        now = time.monotonic()
        progress = self._eo.progress
        for topic, p in list(progress.items()):
            if not p.above:
                self._gaps.pop(topic, None)
                continue
            mark, since = self._gaps.get(topic, (None, now))
            if mark != p.mark:
                self._gaps[topic] = (p.mark, now)
            elif now - since >= GAP_REPAIR_AFTER_S:
                self._gaps[topic] = (p.mark, now)
                self._repair(topic, p, min(p.above))
        if (
            len(progress) == 1
            and now - self._last_input_at >= GAP_REPAIR_AFTER_S
            and now - self._tail_checked_at >= GAP_REPAIR_AFTER_S
        ):
            self._tail_checked_at = now
            self._check_tail()

    def _check_tail(self) -> None:
        ((topic, p),) = self._eo.progress.items()
        if p.above or p.mark is None:
            return
        # Another instance of the function (the active consumer, when this one is a
        # standby) may be making the progress: read back only what nobody applies.
        try:
            stored = self._eo.store.get_positions(self._parts.spec.fqfn).get(topic)
        except StateStoreError as exc:
            log.debug("%s: reading the committed progress failed: %s", self._parts.spec.fqfn, exc)
            return
        if stored is not None and stored != self._eo.committed(topic):
            self._eo.adopt(topic, stored)
            return
        try:
            last = self._parts.inputs.last_message_id()
        except pulsar.PulsarException as exc:  # a multi-topic consumer cannot tell; gaps are still repaired
            log.debug("%s: no last message id: %s", self._parts.spec.fqfn, exc)
            return
        if (last.ledger_id(), last.entry_id()) > (p.mark[0], p.mark[1]):
            self._repair(topic, p, None)

    def _repair(self, topic: str, p: PartitionProgress, upto: tuple[int, int, int] | None) -> None:
        """Settle the inputs after the mark and before ``upto`` (``None``: to the topic's end)."""
        assert p.mark is not None
        parts = self._parts
        parts.capabilities.workaround(
            "read-back-undelivered-inputs",
            "inputs held by a killed consumer may never be delivered again; they are read from the topic",
        )
        ledger, entry, _batch, _size = p.mark
        start = pulsar.MessageId(-1, ledger, entry - 1, -1) if entry > 0 else pulsar.MessageId.earliest
        found: list[Any] = []
        total = 0
        batch_max = parts.options.batch_max_messages
        reader = parts.client.create_reader(topic, start, receiver_queue_size=1000)
        try:
            raw = raw_reader(reader)
            while not parts.stopping.is_set():
                try:
                    msg = raw.read_next(1000)
                except pulsar.Timeout:  # the end of what is there
                    break
                pos = position_with_size(msg)
                if upto is not None and (pos[0], pos[1], pos[2]) >= upto:
                    break
                if not self._eo.progress[topic].applied(pos):
                    found.append(msg)
                if len(found) >= batch_max:
                    total += len(found)
                    self._read_back(found)
                    found = []
            if found:
                total += len(found)
                self._read_back(found)
        finally:
            reader.close()
        if total:
            log.warning(
                "%s: %d inputs of %s after %s were never delivered again; read them back from the topic",
                parts.spec.fqfn,
                total,
                topic,
                p.mark,
            )

    def _read_back(self, msgs: list[Any]) -> None:
        self._eo.inputs_read_back += len(msgs)
        self._eo.process(msgs, acknowledge=False)
