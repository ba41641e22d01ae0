"""The hot path's direct client views against the real broker, on both twins.

The compiled twin reads, acknowledges and sends through the client library's C API on
the consumer and producer the Python binding created; the pure twin's views are the
binding's own objects. Both must give an instance the same messages, outputs and
acknowledgements.
"""

from __future__ import annotations

import uuid
from typing import Any

import pulsar
import pytest

from engine.broker.adapter import MessageBuilder, raw_consumer, raw_producer
from engine.broker.direct import consumer_view, producer_view
from engine.hotpath import HotPath
from tests.integration.harness import consume, produce, runner_for, wait_for

PAYLOADS = [(f"m{i}".encode(), f"k{i}" if i % 2 else None, {"n": str(i), "text": "é\tx"}) for i in range(12)]


def _subscribe(client: pulsar.Client, topic: str, sub: str, **kwargs: Any) -> pulsar.Consumer:
    return client.subscribe(
        topic,
        sub,
        initial_position=pulsar.InitialPosition.Earliest,
        consumer_type=pulsar.ConsumerType.Shared,
        batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(100, -1, 50),
        **kwargs,
    )


def _receive_all(view: Any, count: int) -> list[Any]:
    got: list[Any] = []
    for _ in range(200):
        got += view.batch_receive()
        if len(got) >= count:
            break
    return got


def test_views_are_the_binding_objects_on_the_pure_twin_and_c_views_on_the_native_one(
    client: pulsar.Client, hot: HotPath, topic_prefix: str
) -> None:
    consumer = _subscribe(client, f"{topic_prefix}-in", "s")
    producer = client.create_producer(f"{topic_prefix}-out")
    view, out = consumer_view(hot, raw_consumer(consumer)), producer_view(hot, raw_producer(producer))
    if hot.name == "pure":
        assert view is raw_consumer(consumer) and out is raw_producer(producer)
    else:
        assert type(view).__name__ == "DirectConsumer" and view.raw is raw_consumer(consumer)
        assert type(out).__name__ == "DirectProducer" and out.raw is raw_producer(producer)
        assert view.get_last_message_id is not None  # what a view lacks is the binding's
    consumer.close()
    producer.close()


def test_a_received_message_reads_as_the_binding_reads_it(
    client: pulsar.Client, hot: HotPath, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}-in"
    produce(client, topic, PAYLOADS)
    mine = _subscribe(client, topic, "mine")
    theirs = _subscribe(client, topic, "theirs")
    got = _receive_all(consumer_view(hot, raw_consumer(mine)), len(PAYLOADS))
    ref = _receive_all(raw_consumer(theirs), len(PAYLOADS))
    assert len(got) == len(ref) == len(PAYLOADS)
    for m, r in zip(got, ref, strict=True):
        assert m.data() == r.data()
        assert m.topic_name() == r.topic_name()
        assert m.partition_key() == r.partition_key()
        assert m.properties() == r.properties()
        assert m.publish_timestamp() == r.publish_timestamp()
        assert m.event_timestamp() == r.event_timestamp()
        assert m.redelivery_count() == r.redelivery_count()
        assert str(m.message_id()) == str(r.message_id())
        assert m.message_id().serialize() == r.message_id().serialize()
        assert hot.acks.position_of(m) == hot.acks.position_of(r)
    mine.close()
    theirs.close()


def test_acks_and_nacks_through_a_view_decide_what_comes_again(
    client: pulsar.Client, hot: HotPath, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}-in"
    produce(client, topic, [f"a{i}" for i in range(10)], batching=False)  # one entry each
    consumer = _subscribe(client, topic, "s", negative_ack_redelivery_delay_ms=100)
    view = consumer_view(hot, raw_consumer(consumer))
    got = _receive_all(view, 10)
    hot.acks.ack_messages(view, got, [i for i in range(10) if i != 3])
    hot.acks.nack_messages(view, got, [3])
    again = _receive_all(view, 1)
    assert [m.data() for m in again] == [b"a3"]
    assert again[0].redelivery_count() >= 1
    view.acknowledge(again[0])
    consumer.close()
    # Everything was acknowledged: a new consumer of the subscription gets only new input.
    produce(client, topic, ["late"])
    consumer = _subscribe(client, topic, "s")
    assert [m.data() for m in _receive_all(raw_consumer(consumer), 1)] == [b"late"]
    consumer.close()


def test_a_view_acknowledges_the_binding_own_messages_too(
    client: pulsar.Client, hot: HotPath, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}-in"
    produce(client, topic, ["x", "y"])
    consumer = _subscribe(client, topic, "s")
    raw = raw_consumer(consumer)
    view = consumer_view(hot, raw)
    first = raw.receive(5000)  # a binding message, as a read-back or a skip hands them over
    rest = _receive_all(view, 1)
    hot.acks.ack_messages(view, [first, *rest])
    consumer.close()
    produce(client, topic, ["z"])
    consumer = _subscribe(client, topic, "s")
    assert [m.data() for m in _receive_all(raw_consumer(consumer), 1)] == [b"z"]
    consumer.close()


def test_a_view_raises_the_binding_exceptions(client: pulsar.Client, hot: HotPath, topic_prefix: str) -> None:
    consumer = _subscribe(client, f"{topic_prefix}-in", "s")
    view = consumer_view(hot, raw_consumer(consumer))
    with pytest.raises(pulsar.Timeout):
        view.receive(50)
    consumer.close()
    with pytest.raises(pulsar.PulsarException):
        view.batch_receive()


@pytest.mark.parametrize("source_kind", ["view", "binding"])
def test_outputs_sent_through_a_producer_view_carry_key_and_properties(
    client: pulsar.Client, hot: HotPath, topic_prefix: str, source_kind: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    produce(client, inp, PAYLOADS)
    consumer = _subscribe(client, inp, "s")
    raw = raw_consumer(consumer)
    view = consumer_view(hot, raw) if source_kind == "view" else raw
    sources = _receive_all(view, len(PAYLOADS))
    producer = client.create_producer(out, batching_enabled=True, batching_max_publish_delay_ms=1)
    sender = hot.batching.OutputSender(
        producer_view(hot, raw_producer(producer)),
        MessageBuilder,
        input_properties=True,
        forward_properties=True,
    )
    for m in sources:
        sender(m.data() + b"!", m)
    producer.flush()
    got = consume(client, out, len(PAYLOADS), sub="r")
    assert sender.count == len(PAYLOADS)
    assert [m.data() for m in got] == [p[0] + b"!" for p in PAYLOADS]
    assert [m.partition_key() or None for m in got] == [p[1] for p in PAYLOADS]
    for m, src, p in zip(got, sources, PAYLOADS, strict=True):
        props = m.properties()
        assert props["n"] == p[2]["n"] and props["text"] == p[2]["text"]
        assert props[hot.batching.INPUT_TOPIC_PROPERTY] == src.topic_name()
        assert props[hot.batching.INPUT_MSG_ID_PROPERTY] == hot.direct.input_message_id_property(src)
    consumer.close()
    producer.close()


@pytest.mark.parametrize(
    ("extra", "direct"),
    [
        ({}, True),
        ({"processingGuarantees": "ATMOST_ONCE"}, True),
        ({"processingGuarantees": "EFFECTIVELY_ONCE"}, False),
        ({"processingGuarantees": "MANUAL"}, False),
    ],
)
def test_an_instance_reads_through_the_view_where_it_applies(
    broker: Any,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    extra: dict[str, Any],
    direct: bool,
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "Exclaim",
        "inputs": [inp],
        "output": out,
        "name": f"v{uuid.uuid4().hex[:6]}",
        **extra,
    }
    with runner_for(broker.url, hot.name, data_dir, cfg) as runner:
        produce(client, inp, [(f"p{i}".encode(), f"k{i}", {"i": str(i)}) for i in range(50)])
        got = consume(client, out, 50, sub="r")
        inputs = runner.instances[0].inputs
        assert wait_for(lambda: runner.instances[0].stats.received == 50)
    uses_view = type(inputs.raw).__name__ == "DirectConsumer"
    assert uses_view == (direct and hot.name == "native")
    assert sorted(m.data() for m in got) == sorted(f"p{i}!".encode() for i in range(50))
    assert all(m.properties()["i"] == m.data().decode()[1:-1] for m in got)
    assert all(m.partition_key() == "k" + m.data().decode()[1:-1] for m in got)


def test_the_views_can_be_switched_off(
    broker: Any,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAGNETAR_DIRECT_VIEWS", "0")
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Exclaim", "inputs": [inp], "output": out}
    with runner_for(broker.url, hot.name, data_dir, cfg) as runner:
        produce(client, inp, ["a", "b"])
        assert sorted(m.data() for m in consume(client, out, 2, sub="r")) == [b"a!", b"b!"]
        assert type(runner.instances[0].inputs.raw).__name__ != "DirectConsumer"


def test_a_source_record_sent_through_a_view_carries_key_properties_and_event_time(
    client: pulsar.Client, hot: HotPath, topic_prefix: str
) -> None:
    out = f"{topic_prefix}-out"
    producer = client.create_producer(out, batching_enabled=True, batching_max_publish_delay_ms=1)
    view = producer_view(hot, raw_producer(producer))
    hot.direct.send_record(view, MessageBuilder, b"one", "k1", {"a": "é", "b": "2"}, 1234)
    hot.direct.send_record(view, MessageBuilder, b"two", None, None, 0)
    producer.flush()
    first, second = consume(client, out, 2, sub="r")
    assert (first.data(), first.partition_key(), first.properties(), first.event_timestamp()) == (
        b"one",
        "k1",
        {"a": "é", "b": "2"},
        1234,
    )
    assert (second.data(), second.partition_key(), second.properties(), second.event_timestamp()) == (
        b"two",
        "",
        {},
        0,
    )
    producer.close()
