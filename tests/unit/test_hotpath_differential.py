"""Differential tests: identical batches through both twins give identical results.

Outputs (payload, key, properties), the outcome lists, acks, state deltas and every
counter except timings must match exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hotpath import load
from tests.fakes import FakeBuilder, FakeConsumer, FakeMessage, FakeProducer

TOPICS = ["persistent://public/default/a", "persistent://public/default/b"]


class Ctx:
    _message: Any = None


def user_function(value: Any, context: Ctx) -> Any:
    """Deterministic behaviour from the value: raise, drop, or transform; reads the context."""
    text = str(value)
    if "!" in text:
        raise ValueError(f"bang in {text!r}")
    if text.endswith("0"):
        return None
    if isinstance(value, str):
        return text + "|" + context._message.partition_key()
    return value


def run_batch(
    twin: str, batch: list[tuple[bytes, int, str]], forward: bool, input_props: bool
) -> dict[str, Any]:
    hot = load(twin)
    stats = hot.stats.InstanceStats()
    producer = FakeProducer(fail_on=b"reject|k")
    sender = hot.batching.OutputSender(
        producer, FakeBuilder, input_properties=input_props, forward_properties=forward
    )
    codecs = {
        TOPICS[0]: hot.serde.Codec(hot.serde.KIND_IDENTITY),
        TOPICS[1]: hot.serde.Codec(hot.serde.KIND_STRING),
    }
    dispatcher = hot.dispatch.Dispatcher(
        user_function,
        True,
        Ctx(),
        codecs,
        hot.serde.Codec(hot.serde.KIND_BYTES),
        hot.serde.Codec(hot.serde.KIND_IDENTITY),
        sender,
        stats,
        0,
    )
    msgs = [
        FakeMessage(data, topic=TOPICS[t], ledger=1, entry=i, key=key, properties={"p": str(i)})
        for i, (data, t, key) in enumerate(batch)
    ]
    outcome = dispatcher.run(msgs)
    consumer = FakeConsumer()
    hot.acks.ack_messages(consumer, msgs, outcome.done)
    hot.acks.nack_messages(consumer, msgs, [f[0] for f in outcome.failed])
    snap = stats.snapshot()
    for key in ("avg_latency_ms", "latency_sum_ms", "avg_latency_ms_1min", "last_invocation_ms"):
        snap.pop(key)
    snap["latest_user_exceptions"] = [t.splitlines()[-1] for t, _ in snap["latest_user_exceptions"]]
    snap["latest_system_exceptions"] = [t.splitlines()[-1] for t, _ in snap["latest_system_exceptions"]]
    return {
        "sent": outcome.sent,
        "done": outcome.done,
        "failed": [(i, kind, text.splitlines()[-1]) for i, kind, text in outcome.failed],
        "outputs": producer.sent,
        "acked": [m.message_id().entry_id() for m in consumer.acked],
        "nacked": [m.message_id().entry_id() for m in consumer.nacked],
        "stats": snap,
        "count": sender.count,
    }


message = st.tuples(
    st.one_of(
        st.binary(max_size=12),
        st.text(alphabet="ab01!j. \u00e9", max_size=8).map(str.encode),
        st.sampled_from([b"reject", b"\xff", b"10", b"7"]),
    ),
    st.integers(0, 1),
    st.sampled_from(["", "k", "key-1"]),
)


@given(st.lists(message, max_size=40), st.booleans(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_dispatch_twins_agree(batch: list[tuple[bytes, int, str]], forward: bool, input_props: bool) -> None:
    assert run_batch("native", batch, forward, input_props) == run_batch("pure", batch, forward, input_props)


ops = st.lists(
    st.tuples(
        st.sampled_from(["incr", "del", "put", "putnone"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(-(2**40), 2**40),
    ),
    max_size=30,
)


@given(ops)
@settings(max_examples=300, deadline=None)
def test_state_buffer_twins_agree(script: list[tuple[str, str, int]]) -> None:
    results = []
    for twin in ("native", "pure"):
        buf = load(twin).counters.StateBuffer()
        seen = []
        for op, key, n in script:
            if op == "incr":
                buf.incr(key, n)
            elif op == "del":
                buf.delete_counter(key)
            elif op == "put":
                buf.put(key, str(n).encode())
            else:
                buf.put(key, None)
            seen.append((buf.counter_delta(key), repr(buf.pending_value(key))))
        seen.append(buf.drain())
        seen.append(buf.is_empty())
        results.append(seen)
    assert results[0] == results[1]


positions = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6), st.booleans()), max_size=40)


@given(positions)
@settings(max_examples=300, deadline=None)
def test_duplicate_filter_twins_agree(script: list[tuple[int, int, bool]]) -> None:
    results = []
    for twin in ("native", "pure"):
        filt = load(twin).acks.DuplicateFilter()
        trace = []
        for t, entry, fail in script:
            msg = FakeMessage(b"x", topic=TOPICS[t], ledger=3, entry=entry)
            fresh, dups = filt.admit([msg])
            trace.append((len(fresh), len(dups)))
            if fail and fresh:
                filt.mark_failed(fresh)
        trace.append((filt.last_position(TOPICS[0]), filt.last_position(TOPICS[1])))
        results.append(trace)
    assert results[0] == results[1]


@given(
    st.integers(0, 2**25 - 1),
    st.integers(0, 2**28 - 1),
    st.integers(-1, 1021),  # the next index stays within the 1,023 an entry may hold
)
def test_sequence_id_twins_agree_and_follow_the_input_order(ledger: int, entry: int, batch: int) -> None:
    native, pure = load("native"), load("pure")
    msg = FakeMessage(b"x", ledger=ledger, entry=entry, batch=batch)
    seq = pure.batching.sequence_id_of(msg)
    assert native.batching.sequence_id_of(msg) == seq
    assert 0 <= seq < 2**63
    nxt = FakeMessage(b"x", ledger=ledger, entry=entry, batch=batch + 1)
    assert pure.batching.sequence_id_of(nxt) > seq
