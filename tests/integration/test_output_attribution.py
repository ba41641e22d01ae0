"""What a function prints in the thread runtime goes to its own log, named, not to the worker's stdout."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pulsar
import pytest

from tests.integration.harness import consume, produce, runner_for


def test_prints_of_a_function_land_in_its_log_with_its_name(
    broker: Any, client: pulsar.Client, topic_prefix: str, data_dir: str, capfd: pytest.CaptureFixture[str]
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    log = Path(data_dir) / "instances" / "chatty-0.log"
    cfg = {"className": "Chatty", "inputs": [inp], "output": out}
    with runner_for(broker.url, "native", data_dir, cfg, output_log=str(log)) as runner:
        produce(client, inp, ["a", "b"])
        assert len(consume(client, out, 2)) == 2
        print("the test's own line")
        fqfn = runner.spec.fqfn
    text = log.read_text()
    assert f"magnetar.function.{fqfn}.0: stdout: hello a" in text
    assert "WARNING" in text and "stderr: careful with b" in text
    assert "the test's own line" not in text
    captured = capfd.readouterr()
    assert "hello a" not in captured.out and "careful with" not in captured.err
    assert "the test's own line" in captured.out
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
