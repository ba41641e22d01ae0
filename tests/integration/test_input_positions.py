"""Where inputs start, on the real broker: `skipToLatest`, and topic patterns (which pulsar-lite lacks)."""

from __future__ import annotations

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.broker.capabilities import workarounds_run
from engine.hotpath import HotPath
from engine.instance.inputs import BrokerLacksFeature
from tests.integration.harness import consume, drain, produce, runner_for


def test_skip_to_latest_skips_what_was_published_while_down(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    config = {"className": "Exclaim", "inputs": [inp], "output": out, "skipToLatest": True}
    produce(client, inp, ["before-first-start"])
    with runner_for(broker.url, hot.name, data_dir, config):
        produce(client, inp, ["first"])
        assert [m.data() for m in consume(client, out, 1, sub="check")] == [b"first!"]
    produce(client, inp, [f"while-down-{i}" for i in range(30)])
    with runner_for(broker.url, hot.name, data_dir, config):
        produce(client, inp, ["second"])
        got = consume(client, out, 1, sub="check")
        assert [m.data() for m in got] == [b"second!"]
        # Nothing published while the function was down comes out afterwards either.
        assert drain(client, out, sub="check") == []
    assert "pulsar-lite:skip-to-latest-by-reading" in workarounds_run()


def test_without_skip_to_latest_the_backlog_is_processed(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    config = {"className": "Exclaim", "inputs": [inp], "output": out}
    produce(client, inp, ["a", "b"])
    with runner_for(broker.url, hot.name, data_dir, config):
        got = consume(client, out, 2)
    assert sorted(m.data() for m in got) == [b"a!", b"b!"]


def test_a_topic_pattern_on_pulsar_lite_fails_to_start_with_a_clear_error(
    broker: EmbeddedBroker, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    config = {
        "className": "Exclaim",
        "topicsPattern": f"persistent://public/default/{topic_prefix}-a-.*",
        "inputSpecs": {f"persistent://public/default/{topic_prefix}-b-.*": {"regexPattern": True}},
        "output": f"{topic_prefix}-out",
    }
    with pytest.raises(BrokerLacksFeature, match="no topic-pattern subscriptions"):
        with runner_for(broker.url, hot.name, data_dir, config):
            pass
