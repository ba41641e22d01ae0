"""localrun's process runtime (its default): each instance a child process, restarted when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson
import pulsar
import pytest

from engine.broker import EmbeddedBroker
from tests.integration.harness import MOD, consume, produce, runner_for, wait_for

ROOT = Path(__file__).resolve().parents[2]


class _Lines:
    """The lines a process writes to one of its pipes, collected on a thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def statuses(self) -> list[list[dict[str, Any]]]:
        return [orjson.loads(line) for line in list(self.lines) if line.startswith("[")]


def _children_of(pid: int) -> list[int]:
    """Instance children whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                command = fh.read().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if ppid == pid and b"engine.runtime.child" in command:
            found.append(int(entry))
    return found


def test_localrun_survives_a_child_that_crashes_restarts_it_and_goes_on(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path, topic_prefix: str
) -> None:
    # What becomes of an input that kills every child (retried, then dead-lettered) is
    # the crash ledger's, tested on its own (test_crash_attribution). Here the function
    # dies once: localrun itself lives on, counts the restart, and its new child
    # processes what comes next (pulsar-lite may never deliver again what the killed
    # child held, so only inputs sent after the restart are certain to come).
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "functions",
            "localrun",  # the default runtime: process
            "--broker-url",
            broker.url,
            "--broker-kind",
            "pulsar-lite",
            "--classname",
            f"{MOD}.CrashOnce",
            "--user-config",
            orjson.dumps({"marker": str(tmp_path / "crashed")}).decode(),
            "--inputs",
            inp,
            "--output",
            out,
            "--subs-position",
            "Earliest",
            "--max-message-retries",
            "1",
            "--data-dir",
            str(tmp_path / "data"),
            "--status-interval",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    status, errors = _Lines(proc.stdout), _Lines(proc.stderr)

    def restarted_and_running() -> bool:
        last = status.statuses()[-1][0] if status.statuses() else {}
        return bool(last.get("running")) and last.get("numRestarts", 0) >= 1

    try:
        assert wait_for(lambda: any("process runtime" in line for line in errors.lines), timeout=30), (
            errors.lines
        )
        produce(client, inp, ["a"])
        first = consume(client, out, 1, sub="out")
        # The first child was forked straight from localrun (no fork server start-up first).
        assert _children_of(proc.pid), "localrun's first child is its own"
        produce(client, inp, ["boom"])
        assert wait_for(restarted_and_running, timeout=60), (status.lines[-3:], errors.lines[-20:])
        assert proc.poll() is None, "localrun itself survived its instance's crash"
        produce(client, inp, ["c"])
        later: set[bytes] = set()
        deadline = time.monotonic() + 30
        while b"c!" not in later and time.monotonic() < deadline:
            later |= {m.data() for m in consume(client, out, 1, timeout=1, sub="out")}
        last = status.statuses()[-1][0]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
    assert [m.data() for m in first] == [b"a!"]
    assert b"c!" in later
    assert (tmp_path / "crashed").exists()
    assert last["numRestarts"] == 1 and last["running"]
    assert code == 0


def test_localrun_process_runtime_runs_each_instance_in_its_own_child(
    broker: EmbeddedBroker, client: pulsar.Client, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Exclaim", "inputs": [inp], "output": out, "parallelism": 2}
    with runner_for(broker.url, "native", data_dir, cfg, runtime="process") as runner:
        assert runner.children is not None and runner.instances == []
        pids = {child.pid for child in runner.children.instances}
        assert len(pids) == 2 and os.getpid() not in pids
        payloads = [f"m{i}" for i in range(40)]
        produce(client, inp, payloads)
        got = {m.data() for m in consume(client, out, 40, timeout=30)}
        st = runner.status()
        assert wait_for(lambda: sum(s["numSuccessfullyProcessed"] for s in runner.status()) == 40)
    assert got == {f"{p}!".encode() for p in payloads}
    assert [s["running"] for s in st] == [True, True]
    assert [s["numRestarts"] for s in st] == [0, 0]
    assert all(not child.is_alive() for child in runner.children.instances)  # stopped with the runner


@pytest.mark.parametrize("backlog", [False, True], ids=["live", "backlog"])
@pytest.mark.parametrize("twin", ["native", "pure"])
def test_localrun_dead_letters_an_input_that_kills_every_child_and_the_rest_come_out(
    broker: EmbeddedBroker, client: pulsar.Client, data_dir: str, topic_prefix: str, twin: str, backlog: bool
) -> None:
    # Every delivery of "boom" ends the child (os._exit(1)): the child that follows each
    # death counts a failed attempt for it, and after maxMessageRetries=1 it is
    # dead-lettered with the crash named; the inputs around it (which the dead children
    # held unacknowledged) come out too. With the inputs already waiting, even the
    # first child dies before it is ready: localrun restarts it rather than give up.
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = {
        "className": "Crasher",
        "inputs": [inp],
        "output": out,
        "maxMessageRetries": 1,
        "deadLetterTopic": dlq,
    }
    dead: list[pulsar.Message] = []
    outputs: set[bytes] = set()
    if backlog:
        produce(client, inp, ["a", "boom", "b"])
    with runner_for(broker.url, twin, data_dir, cfg, runtime="process") as runner:
        if not backlog:
            produce(client, inp, ["a", "boom", "b"])
        deadline = time.monotonic() + 90
        while not (dead and {b"a!", b"b!"} <= outputs) and time.monotonic() < deadline:
            if not dead:
                dead = consume(client, dlq, 1, timeout=0.5, sub="dlq")
            outputs |= {m.data() for m in consume(client, out, 2, timeout=0.5, sub="out")}
        st = runner.status()
    assert [m.data() for m in dead] == [b"boom"], (outputs, st)
    assert "exited with code 1 while processing this message" in dead[0].properties()["__pfn_error__"]
    assert {b"a!", b"b!"} <= outputs, st
    assert b"boom!" not in outputs
    assert 1 <= st[0]["numRestarts"] <= 3, st
