"""Poison messages: retries, dead letters, decode failures, timeouts; nothing lost, nothing stalled."""

from __future__ import annotations

import pulsar

from engine.broker import EmbeddedBroker
from engine.hotpath import HotPath
from engine.instance import DLQ_ERROR_PROPERTY
from tests.integration.harness import consume, produce, runner_for


def test_user_exception_goes_to_dead_letter_after_retries(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "Poison",
        "inputs": [inp],
        "output": out,
        "maxMessageRetries": 2,
        "deadLetterTopic": dlq,
    }
    good = [f"good{i}" for i in range(50)]
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        produce(client, inp, [(b"poison pill", "k9", {"trace": "t1"}), *good])
        outputs = consume(client, out, 50)  # the poison message does not stall the rest
        dead = consume(client, dlq, 1)
        stats = r.instances[0].stats
    assert sorted(m.data().decode() for m in outputs) == sorted(g.upper() for g in good)
    assert len(dead) == 1
    msg = dead[0]
    assert msg.data() == b"poison pill" and msg.partition_key() == "k9"
    props = msg.properties()
    assert props["trace"] == "t1"
    assert "ValueError: cannot digest poison pill" in props[DLQ_ERROR_PROPERTY]
    assert props["__pfn_input_topic__"].endswith(inp)
    assert stats.user_exceptions == 3  # first attempt + 2 retries


def test_undecodable_message_is_dead_lettered(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "Doubler",
        "inputs": [inp],
        "output": out,
        "customSchemaInputs": {inp: "JSON"},
        "outputSchemaType": "JSON",
        "maxMessageRetries": 0,
        "deadLetterTopic": dlq,
    }
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        produce(client, inp, [b"{broken", b'{"n": 4}'])
        assert [m.data() for m in consume(client, out, 1)] == [b'{"doubled":8}']
        dead = consume(client, dlq, 1)
        stats = r.instances[0].stats
    assert [m.data() for m in dead] == [b"{broken"]
    assert "could not decode message" in dead[0].properties()[DLQ_ERROR_PROPERTY]
    assert stats.system_exceptions == 1


def test_default_dead_letter_topic_name(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Poison", "name": "pz", "inputs": [inp], "output": out, "maxMessageRetries": 0}
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, ["poison"])
        dead = consume(client, f"persistent://public/default/{inp}-public-default-pz-DLQ", 1)
    assert [m.data() for m in dead] == [b"poison"]


def test_timeout_ms_fails_slow_calls_then_dead_letters(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "Slow",
        "inputs": [inp],
        "output": out,
        "timeoutMs": 100,
        "maxMessageRetries": 1,
        "deadLetterTopic": dlq,
    }
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, ["slow-1", "fast-1"])
        assert [m.data() for m in consume(client, out, 1)] == [b"fast-1"]
        dead = consume(client, dlq, 1)
    assert [m.data() for m in dead] == [b"slow-1"]
    assert "over timeoutMs=100" in dead[0].properties()[DLQ_ERROR_PROPERTY]
