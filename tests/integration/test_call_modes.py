"""Async, threaded and batch functions on the real broker, on both hot-path twins."""

from __future__ import annotations

import struct
from typing import Any

import pulsar
import pytest

from tests.integration.harness import consume, drain, produce, runner_for, wait_for

TWINS = ("native", "pure")


def keyed(prefix: str, count: int, keys: int) -> list[Any]:
    return [(f"{prefix}-{i}".encode(), f"k{i % keys}", {}) for i in range(count)]


@pytest.mark.parametrize("twin", TWINS)
def test_async_function_keeps_input_order_and_each_call_sees_its_own_message(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "AsyncKeyed", "inputs": [inp], "output": out, "retainOrdering": True}
    with runner_for(broker.url, twin, data_dir, cfg) as runner:
        produce(client, inp, keyed("m", 300, 7))
        got = consume(client, out, 300)
        assert [m.data().decode() for m in got] == [f"m-{i}@k{i % 7}" for i in range(300)]
        assert runner.instances[0].stats.processed_ok == 300


@pytest.mark.parametrize("twin", TWINS)
def test_threaded_function_keeps_key_order_and_counts_state_exactly(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "BlockingKeyed",
        "inputs": [inp],
        "output": out,
        "retainKeyOrdering": True,
        "concurrency": 16,
    }
    with runner_for(broker.url, twin, data_dir, cfg) as runner:
        produce(client, inp, keyed("m", 200, 5))
        got = consume(client, out, 200)
        by_key: dict[str, list[int]] = {}
        for m in got:
            body, key = m.data().decode().split("@")
            assert key == m.partition_key() == f"k{int(body.split('-')[1]) % 5}"
            by_key.setdefault(key, []).append(int(body.split("-")[1]))
        assert all(seq == sorted(seq) for seq in by_key.values()), by_key
        assert sum(len(v) for v in by_key.values()) == 200
        store = runner.state_store
        assert store is not None
        assert wait_for(lambda: store.get_counter(runner.spec.fqfn, "calls") == 200)


@pytest.mark.parametrize("twin", TWINS)
def test_async_call_past_timeout_is_cancelled_retried_and_dead_lettered(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "AsyncKeyed",
        "inputs": [inp],
        "output": out,
        "timeoutMs": 300,
        "maxMessageRetries": 1,
        "deadLetterTopic": dlq,
    }
    with runner_for(broker.url, twin, data_dir, cfg) as runner:
        produce(client, inp, [*keyed("m", 5, 1), (b"hang-9", "k", {})])
        assert len(consume(client, out, 5)) == 5
        dead = consume(client, dlq, 1, timeout=30)
        assert [m.data() for m in dead] == [b"hang-9"]
        assert "timeoutMs=300" in dead[0].properties()["__pfn_error__"]
        assert runner.instances[0].stats.user_exceptions >= 2


@pytest.mark.parametrize("twin", TWINS)
def test_module_level_async_process(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "tests.integration.functions_under_test.async_module_process",
        "inputs": [inp],
        "output": out,
    }
    with runner_for(broker.url, twin, data_dir, cfg):
        produce(client, inp, ["a", "b"])
        assert sorted(m.data() for m in consume(client, out, 2)) == [b"a~", b"b~"]


@pytest.mark.parametrize("twin", TWINS)
def test_batch_function_gets_a_numpy_array(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    serde = "engine.function.serdes.Float64SerDe"
    cfg = {
        "className": "BatchDouble",
        "inputs": [inp],
        "output": out,
        "customSerdeInputs": {inp: serde},
        "outputSerdeClassName": serde,
    }
    with runner_for(broker.url, twin, data_dir, cfg):
        produce(client, inp, [struct.pack("<d", float(i)) for i in range(100)])
        got = consume(client, out, 100)
        assert sorted(struct.unpack("<d", m.data())[0] for m in got) == [2.0 * i for i in range(100)]


@pytest.mark.parametrize("twin", TWINS)
def test_async_effectively_once_counts_exactly(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp = f"{topic_prefix}-in"
    cfg = {"className": "AsyncCounter", "inputs": [inp], "processingGuarantees": "EFFECTIVELY_ONCE"}
    words = [f"w{i % 10}" for i in range(500)]
    with runner_for(broker.url, twin, data_dir, cfg) as runner:
        produce(client, inp, words)
        store = runner.state_store
        assert store is not None
        assert wait_for(lambda: all(store.get_counter(runner.spec.fqfn, f"w{i}") == 50 for i in range(10)))
    assert drain(client, inp, quiet=0.2, sub=runner.spec.subscription_name) == []
