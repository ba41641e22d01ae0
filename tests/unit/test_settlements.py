"""Each settlement on its own, against fake inputs and producers, on both hot-path twins.

The integration tests run all of them on the real broker; these pin down each
guarantee's rules (when an input is acked, retried, dead-lettered) exactly.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.broker.capabilities import BrokerCapabilities
from engine.config import parse_function_config, resolve
from engine.config.validation import FunctionSpec
from engine.hotpath import HotPath
from engine.instance.inputs import BrokerRedelivers, InputConsumer, ReopenToRedeliver
from engine.instance.options import InstanceOptions
from engine.instance.settlement import (
    DLQ_ERROR_PROPERTY,
    AtLeastOnce,
    AtMostOnce,
    EffectivelyOnce,
    SettlementParts,
    settlement_for,
)
from engine.instance.settlement.gaps import NoGapRepair, ReadBackGaps
from engine.state.sqlite_store import SqliteStateStore
from tests.fakes import FakeBuilder, FakeConsumer, FakeMessage

TOPIC = "persistent://public/default/in"
OUT = "persistent://public/default/out"


class FakeInputs:
    """What a settlement uses of :class:`InputConsumer`, recording every call."""

    def __init__(self) -> None:
        self.raw = FakeConsumer()
        self.redelivered = 0
        self.polls: list[bool] = []
        self.nack_delay_ms = 0

    def ack(self, msgs: list[Any], indices: list[int] | None = None) -> None:
        self.raw.acked.extend(msgs if indices is None else [msgs[i] for i in indices])

    def nack(self, msgs: list[Any]) -> None:
        self.raw.nacked.extend(msgs)

    def redeliver_unacked(self) -> None:
        self.redelivered += 1

    def poll(self, busy: bool) -> None:
        self.polls.append(busy)


class FakeTopicProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, str]]] = []

    def send_async(
        self, data: bytes, callback: Any, properties: Any = None, partition_key: Any = None
    ) -> None:
        self.sent.append((data, dict(properties or {})))


class FakePool:
    """A producer pool whose flushes complete only when the test says so."""

    def __init__(self) -> None:
        self.by_topic: dict[str, FakeTopicProducer] = {}
        self.touched: set[str] = set()
        self.flushes: list[Callable[[bool], None]] = []
        self.auto_complete: bool | None = None

    def get(self, topic: str) -> FakeTopicProducer:
        return self.by_topic.setdefault(topic, FakeTopicProducer())

    def touch(self, topic: str) -> None:
        self.touched.add(topic)

    def touched_count(self) -> int:
        return len(self.touched)

    def flush_touched(self, done: Callable[[bool], None]) -> int:
        count = len(self.touched)
        self.touched.clear()
        for _ in range(count):
            self._flush(done)
        return count

    def flush_one(self, topic: str, done: Callable[[bool], None]) -> None:
        self._flush(done)

    def _flush(self, done: Callable[[bool], None]) -> None:
        if self.auto_complete is None:
            self.flushes.append(done)
        else:
            done(self.auto_complete)

    def complete_all(self, ok: bool) -> None:
        flushes, self.flushes = self.flushes, []
        for done in flushes:
            done(ok)

    def flush_all(self) -> None:
        self.touched.clear()


class Ctx:
    _message: Any = None


def spec_of(**config: Any) -> FunctionSpec:
    return resolve(parse_function_config({"className": "m.F", "inputs": [TOPIC], "output": OUT, **config}))


def make_parts(
    hot: HotPath,
    spec: FunctionSpec,
    fn: Callable[[Any, Any], Any],
    store: Any = None,
    capabilities: BrokerCapabilities | None = None,
) -> tuple[SettlementParts, FakeInputs, FakePool, list[bytes]]:
    stats = hot.stats.InstanceStats()
    pool = FakePool()
    sent: list[bytes] = []

    class Out:
        def send_async(self, message: dict[str, Any], callback: Any) -> None:
            sent.append(message["content"])

    codec = hot.serde.Codec(hot.serde.KIND_STRING)
    sender = hot.batching.OutputSender(Out(), FakeBuilder)
    dispatcher = hot.dispatch.Dispatcher(fn, True, Ctx(), {TOPIC: codec}, codec, codec, sender, stats, 0)
    inputs = FakeInputs()
    parts = SettlementParts(
        spec=spec,
        options=InstanceOptions(),
        capabilities=capabilities or BrokerCapabilities.apache(),
        hot=hot,
        client=None,  # type: ignore[arg-type]
        inputs=inputs,  # type: ignore[arg-type]
        dispatcher=dispatcher,
        producers=pool,  # type: ignore[arg-type]
        state_buffer=hot.counters.StateBuffer(),
        state_store=store,
        stats=stats,
        callbacks=deque(),
        stopping=threading.Event(),
    )
    return parts, inputs, pool, sent


def batch(*payloads: bytes, redelivery: int = 0) -> list[FakeMessage]:
    return [FakeMessage(p, ledger=1, entry=i, redelivery=redelivery) for i, p in enumerate(payloads)]


def test_the_guarantee_picks_the_settlement(hot: HotPath, tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "s.db"))
    cases = {
        "ATMOST_ONCE": AtMostOnce,
        "ATLEAST_ONCE": AtLeastOnce,
        "MANUAL": AtLeastOnce,
        "EFFECTIVELY_ONCE": EffectivelyOnce,
    }
    for guarantee, cls in cases.items():
        parts, *_ = make_parts(hot, spec_of(processingGuarantees=guarantee), lambda v, c: v, store)
        settlement = settlement_for(parts)
        assert type(settlement) is cls, guarantee
        if guarantee == "MANUAL":
            assert isinstance(settlement, AtLeastOnce) and not settlement.auto_ack
    store.close()


def test_at_most_once_acks_before_the_function_runs_and_never_retries(hot: HotPath) -> None:
    acked_when_called: list[int] = []
    parts, inputs, _pool, _ = make_parts(hot, spec_of(processingGuarantees="ATMOST_ONCE"), lambda v, c: v)

    def fn(value: str, ctx: Any) -> str:
        acked_when_called.append(len(inputs.raw.acked))
        if value == "bad":
            raise ValueError("bad input")
        return value

    parts.dispatcher.function = fn
    settlement = AtMostOnce(parts)
    settlement.settle(batch(b"a", b"bad"))
    assert acked_when_called == [2, 2]
    assert inputs.raw.nacked == [] and parts.stats.user_exceptions == 1


def test_at_least_once_acks_only_after_the_outputs_are_persisted(hot: HotPath) -> None:
    parts, inputs, pool, sent = make_parts(hot, spec_of(), lambda v, c: v + "!")
    settlement = AtLeastOnce(parts)
    msgs = batch(b"a", b"b")
    settlement.settle(msgs)
    assert sent == [b"a!", b"b!"]
    assert inputs.raw.acked == [] and settlement.busy
    pool.complete_all(True)
    settlement.poll()
    assert inputs.raw.acked == msgs and not settlement.busy


def test_at_least_once_nacks_a_batch_whose_outputs_failed(hot: HotPath) -> None:
    parts, inputs, pool, _ = make_parts(hot, spec_of(), lambda v, c: v)
    settlement = AtLeastOnce(parts)
    msgs = batch(b"a")
    settlement.settle(msgs)
    pool.complete_all(False)
    settlement.poll()
    assert inputs.raw.acked == [] and inputs.raw.nacked == msgs
    assert parts.stats.system_exceptions == 1


def test_retries_then_dead_letters_with_the_error(hot: HotPath) -> None:
    def fn(value: str, ctx: Any) -> str:
        raise RuntimeError(f"cannot handle {value}")

    spec = spec_of(maxMessageRetries=2, deadLetterTopic="persistent://public/default/dlq")
    parts, inputs, pool, _ = make_parts(hot, spec, fn)
    settlement = AtLeastOnce(parts)
    for attempt in range(3):
        settlement.settle(batch(b"x", redelivery=attempt))
    assert len(inputs.raw.nacked) == 2 and inputs.raw.acked == []
    dlq = pool.by_topic["persistent://public/default/dlq"].sent
    assert len(dlq) == 1 and dlq[0][0] == b"x"
    assert "cannot handle x" in dlq[0][1][DLQ_ERROR_PROPERTY]
    pool.complete_all(True)
    settlement.poll()
    assert len(inputs.raw.acked) == 1 and settlement.dead_lettered == 1


def test_a_retried_input_that_succeeds_is_forgotten(hot: HotPath) -> None:
    calls = {"n": 0}

    def fn(value: str, ctx: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first attempt fails")

    parts, inputs, _, _ = make_parts(hot, spec_of(maxMessageRetries=5), fn)
    settlement = AtLeastOnce(parts)
    settlement.settle(batch(b"x"))
    assert len(settlement.retries) == 1
    settlement.settle(batch(b"x", redelivery=1))
    assert len(inputs.raw.acked) == 1
    assert len(settlement.retries) == 0


def test_manual_leaves_acks_to_the_function(hot: HotPath) -> None:
    parts, inputs, pool, _ = make_parts(hot, spec_of(processingGuarantees="MANUAL"), lambda v, c: v)
    settlement = settlement_for(parts)
    settlement.settle(batch(b"a"))
    pool.complete_all(True)
    settlement.poll()
    assert inputs.raw.acked == [] and inputs.raw.nacked == []


def test_duplicate_filter_only_where_the_broker_redelivers_acked_entries(hot: HotPath) -> None:
    spec = spec_of(retainOrdering=True)
    seen: list[str] = []
    for caps, expect_runs in ((BrokerCapabilities.apache(), 2), (BrokerCapabilities.pulsar_lite(), 1)):
        seen.clear()
        parts, _inputs, pool, _ = make_parts(hot, spec, lambda v, c: seen.append(v), capabilities=caps)
        pool.auto_complete = True
        settlement = AtLeastOnce(parts)
        settlement.settle(batch(b"a"))
        settlement.settle(batch(b"a"))  # the same entry delivered again after its ack
        assert len(seen) == expect_runs, caps.kind
        assert settlement.duplicates_dropped == 2 - expect_runs


def test_effectively_once_commits_progress_and_skips_applied_inputs(hot: HotPath, tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "s.db"))

    def count(value: str, ctx: Any) -> str:
        ctx.incr_counter(value)
        return value

    spec = spec_of(processingGuarantees="EFFECTIVELY_ONCE")
    parts, inputs, pool, _ = make_parts(hot, spec, lambda v, c: v, store)
    buffer = parts.state_buffer
    parts.dispatcher.function = lambda v, c: (buffer.incr(v, 1), v)[1]
    pool.auto_complete = True
    settlement = EffectivelyOnce(parts)
    settlement.start()
    assert isinstance(settlement.gaps, NoGapRepair)
    msgs = batch(b"w", b"w")
    settlement.settle(msgs)
    assert store.get_counter(spec.fqfn, "w") == 2
    assert inputs.raw.acked == msgs
    settlement.settle(batch(b"w", b"w"))  # delivered again: already applied, only acked
    assert store.get_counter(spec.fqfn, "w") == 2
    assert settlement.duplicates_dropped == 2
    assert store.get_positions(spec.fqfn)[TOPIC]
    store.close()


def test_effectively_once_replays_the_batch_when_outputs_fail(hot: HotPath, tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "s.db"))
    spec = spec_of(processingGuarantees="EFFECTIVELY_ONCE")
    parts, inputs, pool, _ = make_parts(hot, spec, lambda v, c: v, store)
    buffer = parts.state_buffer
    parts.dispatcher.function = lambda v, c: (buffer.incr(v, 1), v)[1]
    pool.auto_complete = False
    settlement = EffectivelyOnce(parts)
    settlement.start()
    settlement.settle(batch(b"w"))
    assert store.get_counter(spec.fqfn, "w") is None
    assert inputs.raw.acked == [] and inputs.redelivered == 1
    store.close()


def test_gap_read_back_only_where_killed_consumers_lose_inputs(hot: HotPath, tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "s.db"))
    spec = spec_of(processingGuarantees="EFFECTIVELY_ONCE")
    for caps, kind in (
        (BrokerCapabilities.apache(), NoGapRepair),
        (BrokerCapabilities.pulsar_lite(), ReadBackGaps),
    ):
        parts, *_ = make_parts(hot, spec, lambda v, c: v, store, caps)
        assert isinstance(EffectivelyOnce(parts).gaps, kind)
    store.close()


@pytest.mark.parametrize("ordering", [True, False])
def test_reopen_on_nack_only_for_ordered_inputs_of_brokers_that_ignore_nacks(
    hot: HotPath, ordering: bool
) -> None:
    spec = spec_of(retainOrdering=ordering)
    for caps in (BrokerCapabilities.apache(), BrokerCapabilities.pulsar_lite()):
        inputs = InputConsumer(None, spec, 0, hot, caps)  # type: ignore[arg-type]
        expected = ReopenToRedeliver if ordering and caps.nack_ignored_on_ordered else BrokerRedelivers
        assert type(inputs.redelivery) is expected, (caps.kind, ordering)


def _twice(msg: FakeMessage) -> list[FakeMessage]:
    """One input and the copy of it a broker handed out again in the same batch."""
    ident = msg.message_id()
    return [msg, FakeMessage(msg.data(), ledger=ident.ledger_id(), entry=ident.entry_id())]


def test_effectively_once_does_not_ack_a_failing_input_through_its_copy_in_the_batch(
    hot: HotPath, tmp_path: Path
) -> None:
    """A batch holding one input twice that fails is delivered again, with nothing acked."""
    store = SqliteStateStore(str(tmp_path / "s.db"))

    def fail(value: str, ctx: Any) -> str:
        raise RuntimeError("cannot handle it")

    spec = spec_of(processingGuarantees="EFFECTIVELY_ONCE", maxMessageRetries=3)
    parts, inputs, pool, _ = make_parts(hot, spec, fail, store)
    pool.auto_complete = True
    settlement = EffectivelyOnce(parts)
    settlement.start()
    settlement.settle(_twice(FakeMessage(b"x", ledger=1, entry=0)))
    assert inputs.raw.acked == [] and inputs.redelivered == 1
    assert settlement.duplicates_dropped == 1
    store.close()


def test_at_least_once_does_not_ack_an_input_in_flight_through_its_copy_in_the_batch(hot: HotPath) -> None:
    """On pulsar-lite's Failover, a copy of an input in the same batch waits for that input's outcome."""
    spec = spec_of(retainOrdering=True)
    parts, inputs, pool, _ = make_parts(
        hot, spec, lambda v, c: v, capabilities=BrokerCapabilities.pulsar_lite()
    )
    settlement = AtLeastOnce(parts)
    msgs = _twice(FakeMessage(b"a", ledger=1, entry=0))
    settlement.settle(msgs)
    assert settlement.duplicates_dropped == 1
    assert inputs.raw.acked == []
    pool.complete_all(False)  # the output was not persisted: the input is retried, not acked
    settlement.poll()
    assert inputs.raw.acked == [] and inputs.raw.nacked == msgs[:1]


def test_at_least_once_does_not_ack_an_input_in_flight_through_its_copy_in_a_later_batch(
    hot: HotPath,
) -> None:
    """A copy of an input from an earlier batch whose output is not yet persisted is not acked."""
    spec = spec_of(retainOrdering=True)
    parts, inputs, pool, _ = make_parts(
        hot, spec, lambda v, c: v, capabilities=BrokerCapabilities.pulsar_lite()
    )
    settlement = AtLeastOnce(parts)
    first = FakeMessage(b"a", ledger=1, entry=0)
    settlement.settle([first])  # its output is in flight
    copy = _twice(first)[1]
    settlement.settle([copy, FakeMessage(b"b", ledger=1, entry=1)])
    assert settlement.duplicates_dropped == 1
    assert inputs.raw.acked == []  # neither the input nor its copy before the flushes report
    pool.complete_all(False)  # the first output failed: the input is retried, never acked
    settlement.poll()
    assert first in inputs.raw.nacked and copy not in inputs.raw.acked
    assert inputs.raw.acked == []
