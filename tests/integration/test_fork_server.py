"""Process-runtime children forked from the worker's fork server, on the real broker."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.runtime.forkserver import ForkedProcess, ForkServer
from engine.runtime.process import InstanceStartError, ProcessInstance
from tests.integration.harness import MOD, consume, process_instance, produce, wait_for


@pytest.fixture
def forks(tmp_path: Path) -> Iterator[ForkServer]:
    server = ForkServer(str(tmp_path / "instances" / "fork-server.log")).start()
    yield server
    server.close()


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().decode().replace("\0", " ").split()


def _instance(broker: EmbeddedBroker, tmp: Path, forks: ForkServer, cls: str, name: str) -> ProcessInstance:
    config = {"name": name, "className": f"{MOD}.{cls}", "inputs": [f"{name}-in"], "output": f"{name}-out"}
    inst: ProcessInstance = process_instance(broker.url, tmp, config, "pure", worker_id="w-fork", forks=forks)
    return inst


def test_a_forked_child_runs_reports_its_output_and_stops_in_order(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path, forks: ForkServer
) -> None:
    name = f"fk{uuid.uuid4().hex[:6]}"
    inst = _instance(broker, tmp_path, forks, "Chatty", name)
    t0 = time.monotonic()
    inst.start()
    started = time.monotonic() - t0
    try:
        assert isinstance(inst.proc, ForkedProcess) and inst.pid is not None
        assert _ppid(inst.pid) == forks.pid
        argv = _cmdline(inst.pid)
        assert argv[1:3] == ["-m", "engine.runtime.child"] and name in " ".join(argv)
        assert inst.is_alive() and inst.health_check()
        produce(client, f"{name}-in", ["a", "b"], batching=False)
        assert sorted(m.data().decode() for m in consume(client, f"{name}-out", 2)) == ["a", "b"]
        # What the function prints (stdout and stderr alike) goes to the instance's log.
        log_text = lambda: Path(inst.log_path).read_text()  # noqa: E731
        assert wait_for(lambda: "hello a" in log_text() and "careful with b" in log_text())
    finally:
        inst.stop()
    assert inst.proc.returncode == 0 and not inst.is_alive()
    assert started < 5.0, started


def test_exit_codes_and_signals_of_forked_children_are_reported(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path, forks: ForkServer
) -> None:
    name = f"fc{uuid.uuid4().hex[:6]}"
    crasher = _instance(broker, tmp_path, forks, "Crasher", name)
    crasher.start()
    produce(client, f"{name}-in", ["boom"], batching=False)
    assert wait_for(lambda: not crasher.is_alive())
    assert crasher.proc is not None and crasher.proc.wait(5) == 1
    assert crasher.failure_text == "instance process exited with code 1"

    killed = _instance(broker, tmp_path, forks, "Exclaim", f"fs{uuid.uuid4().hex[:6]}")
    killed.start()
    assert killed.pid is not None
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.proc is not None and killed.proc.wait(5) == -signal.SIGKILL
    assert killed.failure_text == "instance process killed by SIGKILL"

    bad = _instance(broker, tmp_path, forks, "NoSuchClass", f"fb{uuid.uuid4().hex[:6]}")
    with pytest.raises(InstanceStartError, match="NoSuchClass"):
        bad.start()
    assert bad.proc is not None and bad.proc.returncode == 2


def test_children_end_with_their_fork_server_and_later_ones_are_spawned(
    broker: EmbeddedBroker, tmp_path: Path, forks: ForkServer
) -> None:
    first = _instance(broker, tmp_path, forks, "Exclaim", f"fd{uuid.uuid4().hex[:6]}")
    first.start()
    assert forks.pid is not None and first.pid is not None
    os.kill(forks.pid, signal.SIGKILL)
    assert first.proc is not None and first.proc.wait(10) is not None
    assert not first.is_alive() and first.failure_text == "instance process ended with its fork server"
    assert not os.path.exists(f"/proc/{first.pid}") or _state(first.pid) == "Z"
    assert not forks.usable

    second = _instance(broker, tmp_path, forks, "Exclaim", f"fe{uuid.uuid4().hex[:6]}")
    second.start()
    try:
        assert not isinstance(second.proc, ForkedProcess) and second.pid is not None
        assert _ppid(second.pid) == os.getpid() and second.is_alive()
    finally:
        second.stop()
    assert second.proc is not None and second.proc.returncode == 0


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_the_server_makes_its_idle_time_imports_once_it_is_idle(forks: ForkServer) -> None:
    # A function's child does not need the connectors; the server imports them when idle.
    assert forks.preloaded.wait(30), "no preloaded message"
    assert forks.usable


def test_a_child_forked_from_the_connectors_preloaded_server_still_runs(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path, forks: ForkServer
) -> None:
    assert forks.preloaded.wait(30)
    name = f"fp{uuid.uuid4().hex[:6]}"
    inst = _instance(broker, tmp_path, forks, "Exclaim", name)
    inst.start()
    try:
        assert inst.pid is not None and _ppid(inst.pid) == forks.pid
        produce(client, f"{name}-in", ["a"])
        assert [m.data() for m in consume(client, f"{name}-out", 1)] == [b"a!"]
    finally:
        inst.stop()
