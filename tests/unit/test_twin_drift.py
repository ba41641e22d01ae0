"""Differential tests for the points where the twins have drifted apart before.

Each test feeds the same input to both twins and compares outputs, outcomes, acks,
counters and stats exactly (exceptions by type and message):

* payloads and results that are not ``bytes``: ``bytearray``, ``memoryview``, ``str``
  and other types, including what a user SerDe's ``serialize`` returns;
* an ``OutputSender`` whose ``producer`` is reassigned after construction;
* a ``Codec`` used directly, against the same codec used by a ``Dispatcher``, and a
  codec changed after the ``Dispatcher`` was built.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hotpath import HotPath, load
from engine.hotpath.protocols import Codec
from tests.fakes import FakeBuilder, FakeConsumer, FakeMessage, FakeProducer

TWINS = ("native", "pure")
TOPIC = "persistent://public/default/in"
KINDS = ("KIND_BYTES", "KIND_STRING", "KIND_JSON", "KIND_PICKLE", "KIND_IDENTITY", "KIND_USER")


class UserSerDe:
    """A user SerDe whose ``serialize`` returns whatever type the value asks for."""

    def deserialize(self, data: bytes) -> Any:
        return ("user", data)

    def serialize(self, value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "as":
            return value[1]
        if isinstance(value, str):
            return value.encode("utf-8")
        return value


def make_codec(hot: HotPath, kind: str) -> Codec:
    serde = hot.serde
    if kind == "KIND_USER":
        return serde.Codec(serde.KIND_USER, UserSerDe())
    return serde.Codec(getattr(serde, kind))


def outcome_of(call: Any, *args: Any) -> tuple[str, Any]:
    """``("ok", (type name, value))`` or ``("error", (type name, message))``."""
    try:
        value = call(*args)
    except Exception as exc:
        return "error", (type(exc).__name__, str(exc))
    return "ok", (type(value).__name__, repr(value))  # repr: NaN is not equal to itself


def as_type(data: bytes, how: str) -> Any:
    if how == "bytearray":
        return bytearray(data)
    if how == "memoryview":
        return memoryview(data)
    if how == "str":
        return data.decode("utf-8", "replace")
    if how == "int":
        return len(data)
    if how == "none":
        return None
    return data


raw_payload = st.one_of(
    st.binary(max_size=16),
    st.sampled_from([b"12", b"1.5", b"2j", b"nan", b"\xff\xfe", b'{"a": 1}', b"[1, 2]", b'"s"']),
    st.builds(pickle.dumps, st.one_of(st.integers(), st.text(max_size=5), st.binary(max_size=5))),
)
payload_type = st.sampled_from(["bytes", "bytearray", "memoryview", "str", "int", "none"])


@given(st.sampled_from(KINDS), raw_payload, payload_type)
@settings(max_examples=400, deadline=None)
def test_codec_decode_agrees_across_twins(kind: str, data: bytes, how: str) -> None:
    results = [outcome_of(make_codec(load(t), kind).decode, as_type(data, how)) for t in TWINS]
    assert results[0] == results[1]
    if how in ("bytes", "bytearray", "memoryview"):
        # A bytes-like payload decodes exactly as its bytes do.
        assert results[0] == outcome_of(make_codec(load("pure"), kind).decode, data)


result_value = st.one_of(
    st.text(max_size=8),
    st.binary(max_size=8),
    st.binary(max_size=8).map(bytearray),
    st.binary(max_size=8).map(memoryview),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9), max_size=2),
    # For the user SerDe: serialize returns the second item as is.
    st.tuples(
        st.just("as"),
        st.one_of(
            st.binary(max_size=6),
            st.binary(max_size=6).map(bytearray),
            st.binary(max_size=6).map(memoryview),
            st.text(max_size=4),
            st.integers(0, 4),
            st.none(),
        ),
    ),
)


@given(st.sampled_from(KINDS), result_value)
@settings(max_examples=400, deadline=None)
def test_codec_encode_agrees_across_twins(kind: str, value: Any) -> None:
    results = [outcome_of(make_codec(load(t), kind).encode, value) for t in TWINS]
    assert results[0] == results[1]
    if results[0][0] == "ok":
        assert results[0][1][0] == "bytes"


def echo(value: Any, context: Any) -> Any:
    """Hands the decoded value back as the result (bytes-like payloads included)."""
    return value


def run_dispatch(
    twin: str,
    kind: str,
    inputs: list[Any],
    function: Any = echo,
    replace_producer: bool = False,
    change_kind_to: str | None = None,
) -> dict[str, Any]:
    hot = load(twin)
    stats = hot.stats.InstanceStats()
    first = FakeProducer()
    sender = hot.batching.OutputSender(first, FakeBuilder)
    codec = make_codec(hot, kind)
    dispatcher = hot.dispatch.Dispatcher(function, True, None, {TOPIC: codec}, codec, codec, sender, stats, 0)
    second = FakeProducer()
    if replace_producer:
        sender.producer = second
    if change_kind_to is not None:
        codec.kind = getattr(hot.serde, change_kind_to)
    msgs = [FakeMessage(data, topic=TOPIC, ledger=1, entry=i) for i, data in enumerate(inputs)]

    class Ctx:
        _message: Any = None

    dispatcher.context = Ctx()
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
        "failed": [(i, k, text.splitlines()[-1]) for i, k, text in outcome.failed],
        "first_producer": first.sent,
        "second_producer": second.sent,
        "acked": [m.message_id().entry_id() for m in consumer.acked],
        "nacked": [m.message_id().entry_id() for m in consumer.nacked],
        "stats": snap,
        "count": sender.count,
    }


batch = st.lists(st.tuples(raw_payload, payload_type), max_size=12)


@given(st.sampled_from(KINDS), batch)
@settings(max_examples=300, deadline=None)
def test_non_bytes_payloads_dispatch_alike(kind: str, items: list[tuple[bytes, str]]) -> None:
    inputs = [as_type(data, how) for data, how in items]
    native = run_dispatch("native", kind, inputs)
    assert native == run_dispatch("pure", kind, inputs)
    # The dispatcher decodes and encodes exactly as the codec used directly does.
    codec = make_codec(load("pure"), kind)
    for index in native["sent"]:
        expected = codec.encode(codec.decode(inputs[index]))
        assert native["first_producer"][native["sent"].index(index)]["content"] == expected


def result_of(value: Any, context: Any) -> Any:
    """The function returns a value chosen by the payload (bytes-like and str results)."""
    data = value if isinstance(value, bytes) else str(value).encode()
    choice = data[:1]
    if choice == b"a":
        return bytearray(data)
    if choice == b"b":
        return memoryview(data)
    if choice == b"c":
        return data.decode("utf-8", "replace")
    if choice == b"d":
        return ("as", data.decode("utf-8", "replace"))  # a user SerDe returning str
    if choice == b"e":
        return ("as", bytearray(data))
    if choice == b"f":
        return ("as", len(data))  # a user SerDe returning an int
    if choice == b"g":
        return [len(data)]
    return data


@given(
    st.sampled_from(KINDS),
    st.lists(
        st.tuples(st.sampled_from("abcdefgh"), st.binary(max_size=6)).map(lambda t: t[0].encode() + t[1])
    ),
)
@settings(max_examples=300, deadline=None)
def test_non_bytes_results_dispatch_alike(kind: str, inputs: list[bytes]) -> None:
    assert run_dispatch("native", kind, inputs, result_of) == run_dispatch("pure", kind, inputs, result_of)


@given(st.lists(st.text(alphabet="xyz!", max_size=5).map(str.encode), min_size=1, max_size=10))
@settings(max_examples=100, deadline=None)
def test_replaced_producer_gets_the_outputs_in_both_twins(inputs: list[bytes]) -> None:
    results = [run_dispatch(t, "KIND_STRING", inputs, replace_producer=True) for t in TWINS]
    assert results[0] == results[1]
    assert results[0]["first_producer"] == []
    assert [m["content"] for m in results[0]["second_producer"]] == inputs
    for twin in TWINS:
        hot = load(twin)
        producer = FakeProducer()
        sender = hot.batching.OutputSender(FakeProducer(), FakeBuilder)
        sender.producer = producer
        assert sender.producer is producer
        sender(b"x", FakeMessage(b"in"))
        assert [m["content"] for m in producer.sent] == [b"x"]


@given(st.sampled_from(KINDS[:-1]), st.sampled_from(KINDS[:-1]), st.lists(raw_payload, max_size=8))
@settings(max_examples=200, deadline=None)
def test_codec_changed_after_construction_is_used_by_both_twins(
    kind: str, new_kind: str, inputs: list[bytes]
) -> None:
    native = run_dispatch("native", kind, inputs, change_kind_to=new_kind)
    assert native == run_dispatch("pure", kind, inputs, change_kind_to=new_kind)
    assert native == run_dispatch("pure", new_kind, inputs)


@pytest.mark.parametrize("twin", TWINS)
def test_sender_takes_bytes_like_payloads_and_refuses_others(twin: str) -> None:
    hot = load(twin)
    producer = FakeProducer()
    sender = hot.batching.OutputSender(producer, FakeBuilder)
    sender(bytearray(b"ab"), FakeMessage(b"in"))
    sender(memoryview(b"cd"), FakeMessage(b"in"))
    assert [m["content"] for m in producer.sent] == [b"ab", b"cd"]
    assert all(type(m["content"]) is bytes for m in producer.sent)
    with pytest.raises(TypeError, match="an output payload must be bytes, bytearray or memoryview, not str"):
        sender("text", FakeMessage(b"in"))
    assert sender.count == 2


@pytest.mark.parametrize("twin", TWINS)
def test_dispatcher_calls_a_codec_of_the_other_twin(twin: str) -> None:
    """Codecs are called, not unpacked: any object with decode/encode works."""
    other = load("pure" if twin == "native" else "native")
    codec = other.serde.Codec(other.serde.KIND_STRING)
    producer = FakeProducer()
    hot = load(twin)
    sender = hot.batching.OutputSender(producer, FakeBuilder)
    dispatcher = hot.dispatch.Dispatcher(
        echo,
        True,
        type("Ctx", (), {"_message": None})(),
        {TOPIC: codec},
        codec,
        codec,
        sender,
        hot.stats.InstanceStats(),
        0,
    )
    outcome = dispatcher.run([FakeMessage(b"hi", topic=TOPIC)])
    assert outcome.sent == [0]
    assert [m["content"] for m in producer.sent] == [b"hi"]
