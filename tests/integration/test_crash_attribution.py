"""An input that kills its instance's process is found, retried and dead-lettered, never crash-looped."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pulsar
import pytest

from engine.instance.crashes import ledger_path, record_exit
from engine.runtime.process import InstanceStartError
from tests.integration.harness import MOD, consume, process_instance, produce


@pytest.mark.parametrize("twin", ["native", "pure"])
def test_a_crashing_input_is_dead_lettered_and_the_rest_flow(
    broker: Any, client: pulsar.Client, tmp_path: Path, twin: str
) -> None:
    name = f"crash{uuid.uuid4().hex[:6]}"
    config = {
        "name": name,
        "className": f"{MOD}.Crasher",
        "inputs": [f"{name}-in"],
        "output": f"{name}-out",
        "maxMessageRetries": 1,
        "deadLetterTopic": f"{name}-dlq",
    }
    produce(client, f"{name}-in", ["a", "b", "boom", "c", "d"])
    ledger = ledger_path(str(tmp_path / "instances"), "public", "default", name, 0)
    deaths = 0
    deadline = time.monotonic() + 90
    dead: list[Any] = []
    outputs: set[bytes] = set()
    while not dead and time.monotonic() < deadline:
        # A dead child's consumer may linger on the broker: spread the new one's id (pulsar-lite).
        inst = process_instance(broker.url, tmp_path, config, twin, consumer_id_spread=4096)
        try:
            inst.start()  # a backlog may kill the child before it even reports ready
        except InstanceStartError:
            deaths += 1  # the failed start told the ledger how the child ended
            continue
        try:
            while inst.is_alive() and time.monotonic() < deadline:
                dead = consume(client, f"{name}-dlq", 1, timeout=0.5, sub="dlq-check")
                if dead:
                    # The rest flows on the instance that set the crashing input aside (at
                    # least once: inputs read back after a death may come out twice).
                    until = time.monotonic() + 30
                    while not {b"c!", b"d!"} <= outputs and time.monotonic() < until:
                        outputs |= {m.data() for m in consume(client, f"{name}-out", 1, timeout=1, sub="out")}
                    break
        finally:
            if inst.is_alive():
                inst.stop()
            else:
                deaths += 1
                record_exit(ledger, inst.failure_text.removeprefix("instance process "))
    assert [m.data() for m in dead] == [b"boom"], f"after {deaths} deaths"
    assert "exited with code 1 while processing this message" in dead[0].properties()["__pfn_error__"]
    assert 1 <= deaths <= 3
    assert {b"a!", b"b!", b"c!", b"d!"} <= outputs
