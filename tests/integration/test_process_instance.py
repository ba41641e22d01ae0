"""One instance in a child process, driven through its InstanceControl gRPC service."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.runtime.process import InstanceStartError, ProcessInstance
from tests.integration.harness import MOD, consume, process_instance, produce


def launch_for(broker: EmbeddedBroker, tmp: Path, twin: str, class_name: str, name: str) -> ProcessInstance:
    config = {
        "name": name,
        "className": class_name,
        "inputs": [f"{name}-in"],
        "output": f"{name}-out",
        "maxMessageRetries": 1,
        "deadLetterTopic": f"{name}-dlq",
    }
    return process_instance(broker.url, tmp, config, twin, worker_id="w-test")  # type: ignore[no-any-return]


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("twin", ["native", "pure"])
def test_control_service_reports_and_resets(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path, twin: str
) -> None:
    name = f"ctl{uuid.uuid4().hex[:6]}"
    inst = launch_for(broker, tmp_path, twin, f"{MOD}.Poison", name)
    inst.start()
    try:
        assert inst.is_alive() and inst.health_check()
        produce(client, f"{name}-in", ["a", "b", "poison-1"], batching=False)
        assert {m.data().decode() for m in consume(client, f"{name}-out", 2)} == {"A", "B"}
        assert len(consume(client, f"{name}-dlq", 1)) == 1  # retried, then dead-lettered
        assert eventually(lambda: inst.status_proto().numDeadLettered == 1)
        st = inst.status_proto()
        assert st.running and st.numSuccessfullyProcessed == 2 and st.numDeadLettered == 1
        assert st.numUserExceptions == 2 and "cannot digest" in st.latestUserExceptions[0].exceptionString
        assert st.workerId == "w-test" and st.instanceId == "0"
        metrics = inst.get_and_reset_metrics()
        assert (
            metrics.processedSuccessfullyTotal == 2 and metrics.userMetrics["user_metric_attempts_count"] >= 3
        )
        assert inst.metrics_proto().processedSuccessfullyTotal == 0  # reset by the call above
        produce(client, f"{name}-in", ["c"])
        consume(client, f"{name}-out", 1)
        assert eventually(lambda: inst.stats.snapshot()["processed_ok"] == 1)
        inst.reset_metrics()
        assert inst.metrics_proto().receivedTotal == 0
    finally:
        inst.stop()
    assert not inst.is_alive() and inst.proc is not None and inst.proc.returncode == 0
    # A stopped child answers from what was last known, without a call.
    assert not inst.status()["running"]


def test_start_failure_names_the_problem(broker: EmbeddedBroker, tmp_path: Path) -> None:
    inst = launch_for(broker, tmp_path, "pure", f"{MOD}.NoSuchClass", f"bad{uuid.uuid4().hex[:6]}")
    with pytest.raises(InstanceStartError, match="NoSuchClass"):
        inst.start()
    assert inst.proc is not None and inst.proc.returncode == 2
