"""Dispatcher behaviour, on both twins."""

from __future__ import annotations

import time
from typing import Any

from engine.hotpath import HotPath
from tests.fakes import FakeBuilder, FakeMessage, FakeProducer

TOPIC = "persistent://public/default/in"


class Ctx:
    _message: Any = None


def make(hot: HotPath, fn: Any, pass_context: bool = True, timeout_ms: int = 0, output: bool = True) -> Any:
    stats = hot.stats.InstanceStats()
    producer = FakeProducer()
    sender = hot.batching.OutputSender(producer, FakeBuilder) if output else None
    codec = hot.serde.Codec(hot.serde.KIND_STRING)
    d = hot.dispatch.Dispatcher(
        fn, pass_context, Ctx(), {TOPIC: codec}, codec, codec if output else None, sender, stats, timeout_ms
    )
    return d, stats, producer


def test_outputs_keys_and_counts(hot: HotPath) -> None:
    d, stats, producer = make(hot, lambda v, c: v + "!")
    out = d.run([FakeMessage(b"a", key="k1"), FakeMessage(b"b")])
    assert out.sent == [0, 1] and out.done == [] and out.failed == []
    assert [m["content"] for m in producer.sent] == [b"a!", b"b!"]
    assert producer.sent[0]["key"] == "k1" and "key" not in producer.sent[1]
    assert stats.received == 2 and stats.processed_ok == 2 and stats.latency_count == 2
    assert stats.last_invocation_ms > 0


def test_context_points_at_current_message(hot: HotPath) -> None:
    seen = []
    d, _, _ = make(hot, lambda v, c: seen.append(c._message.data()))
    d.run([FakeMessage(b"x"), FakeMessage(b"y")])
    assert seen == [b"x", b"y"]


def test_without_context_and_none_result(hot: HotPath) -> None:
    d, stats, producer = make(hot, lambda v: None, pass_context=False)
    out = d.run([FakeMessage(b"a")])
    assert out.done == [0] and out.sent == [] and producer.sent == []
    assert stats.processed_ok == 1


def test_no_output_topic_drops_results(hot: HotPath) -> None:
    d, _, _ = make(hot, lambda v, c: v, output=False)
    assert d.run([FakeMessage(b"a")]).done == [0]


def test_user_and_system_failures(hot: HotPath) -> None:
    def fn(v: str, c: Any) -> Any:
        if v == "boom":
            raise KeyError("boom")
        return 5 if v == "int" else v

    d, stats, _ = make(hot, fn)
    out = d.run([FakeMessage(b"ok"), FakeMessage(b"boom"), FakeMessage(b"\xff"), FakeMessage(b"int")])
    assert out.sent == [0]
    kinds = {i: k for i, k, _ in out.failed}
    assert kinds == {1: hot.dispatch.FAIL_USER, 2: hot.dispatch.FAIL_SYSTEM, 3: hot.dispatch.FAIL_SYSTEM}
    texts = {i: t for i, _, t in out.failed}
    assert "KeyError: 'boom'" in texts[1]
    assert texts[2].startswith("could not decode message")
    assert "string SerDe cannot serialize object of type int" in texts[3]
    assert stats.user_exceptions == 1 and stats.system_exceptions == 2 and stats.processed_ok == 2
    assert len(stats.latest_user) == 1 and "KeyError" in stats.latest_user[0][0]


def test_timeout_fails_slow_calls(hot: HotPath) -> None:
    def fn(v: str, c: Any) -> str:
        if v == "slow":
            time.sleep(0.06)
        return v

    d, stats, producer = make(hot, fn, timeout_ms=30)
    out = d.run([FakeMessage(b"fast"), FakeMessage(b"slow")])
    assert out.sent == [0]
    assert out.failed[0][0] == 1 and "over timeoutMs=30" in out.failed[0][2]
    assert [m["content"] for m in producer.sent] == [b"fast"]
    assert stats.user_exceptions == 1 and stats.processed_ok == 1


def test_input_properties_as_apache(hot: HotPath) -> None:
    import base64

    stats = hot.stats.InstanceStats()
    producer = FakeProducer()
    sender = hot.batching.OutputSender(producer, FakeBuilder, input_properties=True, forward_properties=True)
    msg = FakeMessage(b"x", ledger=7, entry=9, properties={"a": "1"})
    sender(b"y", msg)
    props = producer.sent[0]["properties"]
    assert props["a"] == "1"
    assert props["__pfn_input_topic__"] == TOPIC
    assert base64.b64decode(props["__pfn_input_msg_id__"]) == msg.message_id().serialize()
    assert sender.count == 1 and stats.received == 0


def test_stats_minute_window_and_user_metrics(hot: HotPath) -> None:
    stats = hot.stats.InstanceStats()
    stats.add_received(3)
    stats.add_successes(2, 4.0)
    stats.record_metric("m", 2)
    stats.record_metric("m", 6)
    snap = stats.snapshot()
    assert snap["avg_latency_ms"] == 2.0 and snap["user_metrics"]["m"] == [8.0, 2.0, 2.0, 6.0]
    stats.roll_minute()
    snap = stats.snapshot()
    assert snap["received"] == 3 and snap["received_1min"] == 0 and snap["user_metrics_1min"] == {}
    stats.reset()
    assert stats.snapshot()["received"] == 0
