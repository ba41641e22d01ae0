"""An instance says how far behind its inputs it is: input lag and backlog, in status and /metrics."""

from __future__ import annotations

from typing import Any

import pulsar
import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from engine.instance.status import metrics_data, snapshot_from
from engine.runtime.metrics import InstanceCollector
from tests.conftest import TWINS
from tests.integration import functions_under_test
from tests.integration.harness import consume, produce, runner_for, wait_for


def _scrape(instances: list[Any]) -> str:
    registry = CollectorRegistry()
    registry.register(InstanceCollector(lambda: instances, "test"))
    return generate_latest(registry).decode()


@pytest.mark.parametrize("twin", TWINS)
def test_a_stuck_function_shows_growing_lag_and_backlog_then_none_once_caught_up(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    gate = functions_under_test.GATE
    gate.clear()
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Gated", "inputs": [inp], "output": out}
    try:
        with runner_for(broker.url, twin, data_dir, cfg) as runner:
            inst = runner.instances[0]
            assert wait_for(lambda: inst.snapshot()["input_backlog_entries"] == {inp_full(inst): 0})
            assert inst.snapshot()["input_lag_ms"] == 0.0
            produce(client, inp, ["a", "b"], batching=False)
            assert wait_for(lambda: inst.stats.snapshot()["received"] >= 1)
            # Held in its first call, the instance takes nothing more: four new entries wait.
            produce(client, inp, ["c", "d", "e", "f"], batching=False)
            received = inst.stats.snapshot()["received"]
            expected_backlog = 6 - received
            assert wait_for(
                lambda: inst.snapshot()["input_backlog_entries"] == {inp_full(inst): expected_backlog}
            ), inst.snapshot()["input_backlog_entries"]
            first = inst.snapshot()["input_lag_ms"]
            assert wait_for(lambda: inst.snapshot()["input_lag_ms"] > first + 100)
            text = _scrape([inst])
            assert 'magnetar_function_input_backlog_entries{cluster="test"' in text
            assert f'topic="{inp_full(inst)}"}} {float(expected_backlog)}' in text
            assert "magnetar_function_input_lag_ms{" in text
            gate.set()
            assert sorted(m.data() for m in consume(client, out, 6)) == [b"a", b"b", b"c", b"d", b"e", b"f"]
            assert wait_for(lambda: inst.snapshot()["input_lag_ms"] == 0.0)
            assert inst.snapshot()["input_backlog_entries"] == {inp_full(inst): 0}
    finally:
        gate.set()


def inp_full(inst: Any) -> str:
    topic: str = inst.inputs.topics[0]
    return topic


def test_lag_and_backlog_travel_from_a_child_process() -> None:
    snap = {
        "received": 3,
        "received_1min": 3,
        "processed_ok": 2,
        "processed_ok_1min": 2,
        "system_exceptions": 0,
        "system_exceptions_1min": 0,
        "user_exceptions": 0,
        "user_exceptions_1min": 0,
        "avg_latency_ms": 1.0,
        "avg_latency_ms_1min": 1.0,
        "last_invocation_ms": 5,
        "user_metrics": {},
        "input_lag_ms": 1234.5,
        "input_backlog_entries": {"persistent://public/default/x": 7},
    }
    back = snapshot_from(metrics_data(snap))
    assert back["input_lag_ms"] == 1234.5
    assert back["input_backlog_entries"] == {"persistent://public/default/x": 7}
