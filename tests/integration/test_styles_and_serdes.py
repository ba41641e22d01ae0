"""Every function style and SerDe, end to end on the real broker, on both twins."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.hotpath import HotPath
from tests.integration.harness import consume, produce, runner_for


@pytest.mark.parametrize(
    ("class_name", "suffix"),
    [
        ("Exclaim", "!"),
        ("PlainProcess", "?"),
        ("CallableClass", "~"),
        ("plain_function", "#"),
        ("engine.examples.exclamation", "!"),  # a module: Apache's "native" function
    ],
)
def test_function_styles(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    class_name: str,
    suffix: str,
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    words = [f"w{i}x" for i in range(50)]
    with runner_for(
        broker.url, hot.name, data_dir, {"className": class_name, "inputs": [inp], "output": out}
    ):
        produce(client, inp, words)
        got = consume(client, out, len(words))
    assert sorted(m.data().decode() for m in got) == sorted(w + suffix for w in words)


@pytest.mark.parametrize(
    ("config", "payloads", "expected"),
    [
        ({}, [b"12", b"2.5", b"abc", b"\xff"], ["int:12", "float:2.5", "str:'abc'", "bytes:b'\\xff'"]),
        ({"inputSpecs": {"IN": {"schemaType": "STRING"}}}, [b"12", b"abc"], ["str:'12'", "str:'abc'"]),
        ({"customSerdeInputs": {"IN": "bytes"}}, [b"12"], ["bytes:b'12'"]),
        ({"customSerdeInputs": {"IN": "serde.PickleSerDe"}}, [pickle.dumps((1, "a"))], ["tuple:(1, 'a')"]),
        (
            {"customSerdeInputs": {"IN": "engine.function.serdes.JsonSerDe"}},
            [b'{"a": [1]}'],
            ["dict:{'a': [1]}"],
        ),
        (
            {"customSerdeInputs": {"IN": "tests.integration.serdes_under_test.ReversingSerDe"}},
            [b"olleh"],
            ["str:'hello'"],
        ),
    ],
)
def test_input_serdes(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    config: dict[str, Any],
    payloads: list[bytes],
    expected: list[str],
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    config = json.loads(json.dumps(config).replace('"IN"', json.dumps(inp)))
    cfg = {
        "className": "Describe",
        "inputs": [inp] if "inputSpecs" not in config else [],
        "output": out,
        **config,
    }
    if not cfg["inputs"]:
        del cfg["inputs"]
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, payloads)
        got = consume(client, out, len(payloads))
    assert sorted(m.data().decode() for m in got) == sorted(expected)


def test_json_in_and_out(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "Doubler",
        "inputs": [inp],
        "output": out,
        "customSchemaInputs": {inp: "JSON"},
        "outputSchemaType": "JSON",
    }
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, [json.dumps({"n": i}).encode() for i in range(5)])
        got = consume(client, out, 5)
    assert sorted(json.loads(m.data())["doubled"] for m in got) == [0, 2, 4, 6, 8]


def test_output_serde_pickle(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "Exclaim",
        "inputs": [inp],
        "output": out,
        "outputSerdeClassName": "serde.PickleSerDe",
    }
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, ["a"])
        got = consume(client, out, 1)
    assert pickle.loads(got[0].data()) == "a!"


def test_multiple_inputs_each_with_its_serde(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    a, b, out = f"{topic_prefix}-a", f"{topic_prefix}-b", f"{topic_prefix}-out"
    cfg = {"className": "Describe", "output": out, "customSerdeInputs": {a: "bytes", b: "string"}}
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, a, [b"1"])
        produce(client, b, [b"1"])
        got = consume(client, out, 2)
    assert sorted(m.data().decode() for m in got) == ["bytes:b'1'", "str:'1'"]


def test_producer_config_is_honoured(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "Exclaim",
        "inputs": [inp],
        "output": out,
        "producerConfig": {
            "maxPendingMessages": 10,
            "compressionType": "LZ4",
            "batchBuilder": "KEY_BASED",
            "batchingConfig": {"batchingMaxPublishDelayMs": 0, "batchingMaxMessages": 5},
        },
    }
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        options = r.instances[0].producers._options()
        produce(client, inp, [(f"v{i}".encode(), f"k{i % 3}", {}) for i in range(100)])
        got = consume(client, out, 100)
    assert options["max_pending_messages"] == 10 and options["batching_max_messages"] == 5
    assert options["batching_max_publish_delay_ms"] == 0
    assert options["compression_type"] == pulsar.CompressionType.LZ4
    assert options["batching_type"] == pulsar.BatchingType.KeyBased
    assert sorted(m.data() for m in got) == sorted(f"v{i}!".encode() for i in range(100))
    assert {m.partition_key() for m in got} == {"k0", "k1", "k2"}
