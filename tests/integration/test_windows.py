"""Window functions on the real broker, on both hot-path twins."""

from __future__ import annotations

from typing import Any

import pulsar
import pytest

from tests.integration.harness import consume, drain, produce, runner_for, wait_for

TWINS = ("native", "pure")


@pytest.mark.parametrize("twin", TWINS)
def test_count_tumbling_window_sums_and_acks_what_left_the_window(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "WindowSum",
        "inputs": [inp],
        "output": out,
        "windowConfig": {"windowLengthCount": 10},
    }
    with runner_for(broker.url, twin, data_dir, cfg) as runner:
        # Unbatched: a batch entry is acknowledged only once all of its messages are.
        produce(client, inp, [str(i) for i in range(25)], batching=False)
        got = [m.data().decode().split(":") for m in consume(client, out, 2)]
        assert [(n, s) for n, s, _, _ in got] == [
            ("10", str(sum(range(10)))),
            ("10", str(sum(range(10, 20)))),
        ]
        assert all(int(start) <= int(end) for _, _, start, end in got)
        store = runner.state_store
        assert store is not None
        assert wait_for(lambda: store.get_counter(runner.spec.fqfn, "windows") == 2)
    # The 5 inputs of the unfinished window were never acknowledged.
    left = drain(client, inp, quiet=0.5, sub=runner.spec.subscription_name)
    assert sorted(int(m.data()) for m in left) == list(range(20, 25))


@pytest.mark.parametrize("twin", TWINS)
def test_count_sliding_window_of_a_module_function(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "tests.integration.functions_under_test.window_sum",
        "inputs": [inp],
        "output": out,
        "windowConfig": {"windowLengthCount": 4, "slidingIntervalCount": 2},
    }
    with runner_for(broker.url, twin, data_dir, cfg):
        produce(client, inp, [str(i) for i in range(8)])
        got = [m.data().decode() for m in consume(client, out, 4)]
        assert got == [str(sum(w)) for w in ([0, 1], [0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7])]


@pytest.mark.parametrize("twin", TWINS)
def test_event_time_windows_with_watermarks_and_late_data(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out, late = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-late"
    cfg = {
        "className": "EventWindowCount",
        "inputs": [inp],
        "output": out,
        "windowConfig": {
            "windowLengthDurationMs": 1000,
            "timestampExtractorClassName": "tests.integration.functions_under_test.EventTime",
            "watermarkEmitIntervalMs": 50,
            "lateDataTopic": late,
        },
    }
    with runner_for(broker.url, twin, data_dir, cfg):
        produce(client, inp, ["100:a", "900:b", "1500:c"])
        # The watermark (newest event time, no lag) passes 1000: the first window closes.
        assert [m.data() for m in consume(client, out, 1, sub="check")] == [b"1000:2"]
        produce(client, inp, ["200:late", "2600:d"])
        assert [m.data() for m in consume(client, late, 1)] == [b"200:late"]
        assert [m.data() for m in consume(client, out, 1, sub="check")] == [b"2000:1"]


@pytest.mark.parametrize("twin", TWINS)
def test_effectively_once_window_rebuilt_after_restart_counts_each_window_once(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, twin: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "WindowSum",
        "inputs": [inp],
        "output": out,
        "processingGuarantees": "EFFECTIVELY_ONCE",
        "windowConfig": {"windowLengthCount": 10},
    }
    with runner_for(broker.url, twin, data_dir, cfg) as runner:
        produce(client, inp, [str(i) for i in range(25)])
        store = runner.state_store
        assert store is not None
        assert wait_for(lambda: store.get_counter(runner.spec.fqfn, "windows") == 2)
    # Stopped mid-window: its 5 inputs were not acknowledged and come again.
    with runner_for(broker.url, twin, data_dir, cfg) as runner:
        produce(client, inp, [str(i) for i in range(25, 30)])
        store = runner.state_store
        assert store is not None
        assert wait_for(lambda: store.get_counter(runner.spec.fqfn, "windows") == 3)
        assert store.get_counter(runner.spec.fqfn, "sum") == sum(range(30))
    sums = [m.data().decode().split(":")[1] for m in consume(client, out, 3)]
    assert sums == [str(sum(range(a, a + 10))) for a in (0, 10, 20)]
