"""The ``magnetar`` command as a user runs it: real processes, embedded broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pulsar

from engine.broker import EmbeddedBroker
from tests.integration.harness import consume, produce

EXAMPLE = Path(__file__).parent / "exclaim_example.py"


def magnetar(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout
    )


def test_bad_config_is_rejected_before_anything_starts(tmp_path: Path) -> None:
    out = magnetar(
        "functions",
        "localrun",
        "--py",
        str(EXAMPLE),
        "--classname",
        "exclaim_example.Exclaim",
        "--inputs",
        "in",
        "--output",
        "in",
        "--parallelism",
        "0",
        "--data-dir",
        str(tmp_path),
    )
    assert out.returncode == 2
    assert "output: got 'in'; the output topic must not also be an input" in out.stderr
    assert "parallelism: got 0; expected an integer greater than 0" in out.stderr
    assert not (tmp_path / "broker").exists()  # no broker was started


def test_missing_code_is_reported_before_connecting(tmp_path: Path) -> None:
    out = magnetar(
        "functions",
        "localrun",
        "--py",
        str(tmp_path / "nope.py"),
        "--classname",
        "nope.F",
        "--inputs",
        "in",
        "--data-dir",
        str(tmp_path),
    )
    assert out.returncode == 2 and "no such file" in out.stderr
    out = magnetar(
        "functions",
        "localrun",
        "--py",
        str(EXAMPLE),
        "--classname",
        "exclaim_example.Missing",
        "--inputs",
        "in",
        "--data-dir",
        str(tmp_path),
    )
    assert out.returncode == 2 and "has no attribute 'Missing'" in out.stderr
    assert not (tmp_path / "broker").exists()


def test_bad_json_flag(tmp_path: Path) -> None:
    out = magnetar(
        "functions",
        "localrun",
        "--py",
        str(EXAMPLE),
        "--classname",
        "exclaim_example.Exclaim",
        "--inputs",
        "in",
        "--user-config",
        "{not json",
        "--data-dir",
        str(tmp_path),
    )
    assert out.returncode == 2 and "--user-config: got '{not json'; expected JSON" in out.stderr


def test_localrun_with_embedded_broker_end_to_end(tmp_path: Path) -> None:
    """The README promise: localrun works with no broker running beforehand, and stops cleanly."""
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "functions",
            "localrun",
            "--py",
            str(EXAMPLE),
            "--classname",
            "exclaim_example.Exclaim",
            "--inputs",
            "in",
            "--output",
            "out",
            "--subs-position",
            "Earliest",
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert "running public/default/Exclaim x1" in line, line
        url = line.split(" on ")[1].split(";")[0]
        client = pulsar.Client(url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
        try:
            produce(client, "in", ["a", "b", "c"])
            assert sorted(m.data() for m in consume(client, "out", 3)) == [b"a!", b"b!", b"c!"]
        finally:
            client.close()
        broker_pids = subprocess.run(
            ["pgrep", "-f", str(data)], capture_output=True, text=True
        ).stdout.split()
        assert broker_pids, "the embedded broker runs under the data dir"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"{data}/broker"], capture_output=True, text=True).stdout.split()
    assert left == [], "the embedded broker stopped with magnetar"


def test_embedded_broker_dies_with_its_parent(tmp_path: Path) -> None:
    code = (
        "import sys, time; from engine.broker import EmbeddedBroker\n"
        f"b = EmbeddedBroker({str(tmp_path)!r}).start(); print(b.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the broker outlived a SIGKILLed magnetar")


def test_embedded_broker_binds_loopback_only(broker: EmbeddedBroker) -> None:
    assert broker.process is not None
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    lines = [ln for ln in out.splitlines() if f"pid={broker.process.pid}," in ln]
    assert lines, out
    assert all("127.0.0.1:" in ln for ln in lines), lines
    assert not any(":8080 " in ln for ln in lines)


def test_demo_runs_and_stops(tmp_path: Path) -> None:
    out = magnetar("demo", "--duration", "3", "--rate", "2000", "--data-dir", str(tmp_path / "d"), timeout=90)
    assert out.returncode == 0, out.stderr
    assert "processed" in out.stdout and "stopped cleanly after" in out.stdout
