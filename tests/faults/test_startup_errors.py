"""Every failure to start a worker, standalone or localrun is one line naming the cause, exit code 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.broker import EmbeddedBroker, free_port
from tests.faults.mounts import tmpfs

EXAMPLE = Path(__file__).resolve().parents[1] / "integration" / "exclaim_example.py"
FUNCTION = ["--py", str(EXAMPLE), "--classname", "exclaim_example.Exclaim", "--inputs", "i", "--output", "o"]


def magnetar(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=timeout
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed start printed (asserting that it is one line, exit code 2)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("magnetar: ")
    return lines[0]


def commands(data_dir: Path, *extra: str) -> dict[str, list[str]]:
    """The three ways to start, each with ``extra`` flags."""
    port = str(free_port())
    return {
        "worker": ["worker", "--data-dir", str(data_dir), "--port", port, *extra],
        "standalone": ["standalone", "--data-dir", str(data_dir), "--port", port, *extra],
        "localrun": ["functions", "localrun", *FUNCTION, "--data-dir", str(data_dir), *extra],
    }


@pytest.mark.parametrize("command", ["worker", "localrun"])
def test_a_bad_broker_url_scheme(tmp_path: Path, command: str) -> None:
    line = one_line(magnetar(*commands(tmp_path / "d", "--broker-url", "http://x")[command]))
    assert "--broker-url 'http://x'" in line and "pulsar://host:port" in line and "http://" in line


@pytest.mark.parametrize("command", ["worker", "standalone", "localrun"])
def test_a_bad_state_storage_url_scheme(tmp_path: Path, command: str, broker: EmbeddedBroker) -> None:
    extra = ["--state-storage-url", "mysql://x"]
    if command == "worker":
        extra += ["--broker-url", broker.url]
    line = one_line(magnetar(*commands(tmp_path / "d", *extra)[command]))
    assert "--state-storage-url 'mysql://x'" in line and "mysql://" in line and "postgresql://" in line


@pytest.mark.parametrize("command", ["worker", "localrun"])
def test_an_unreachable_broker_fails_within_seconds(tmp_path: Path, command: str) -> None:
    url = f"pulsar://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    line = one_line(magnetar(*commands(tmp_path / "d", "--broker-url", url)[command]))
    assert time.monotonic() - t0 < 10
    assert line == f"magnetar: cannot reach the broker at {url}: Connection refused"


def test_a_broker_that_does_not_answer_fails_after_the_connect_timeout(tmp_path: Path) -> None:
    # A listener that never accepts: with its backlog full a connection attempt just waits.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        fillers = []
        while len(fillers) < 8:  # fill the accept queue until a connection attempt waits
            try:
                fillers.append(socket.create_connection(silent.getsockname(), timeout=0.5))
            except TimeoutError:
                break
        assert len(fillers) < 8
        url = f"pulsar://127.0.0.1:{silent.getsockname()[1]}"
        try:
            t0 = time.monotonic()
            done = magnetar(
                *commands(tmp_path / "d", "--broker-url", url, "--broker-connect-timeout", "1")["worker"]
            )
            took = time.monotonic() - t0
        finally:
            for f in fillers:
                f.close()
    line = one_line(done)
    assert took < 8
    assert (
        line == f"magnetar: cannot reach the broker at {url}: no answer within 1 s (--broker-connect-timeout)"
    )


@pytest.mark.parametrize("command", ["worker", "standalone", "localrun"])
def test_a_read_only_data_dir(tmp_path: Path, command: str, broker: EmbeddedBroker) -> None:
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        extra = ["--broker-url", broker.url] if command == "worker" else []
        line = one_line(magnetar(*commands(ro / "data", *extra)[command]))
    assert line == f"magnetar: data dir {ro / 'data'} is not usable: Read-only file system"


def test_a_port_in_use(tmp_path: Path, broker: EmbeddedBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        for command in ("worker", "standalone"):
            args = ["--broker-url", broker.url] if command == "worker" else []
            done = magnetar(command, "--data-dir", str(tmp_path / command), "--port", str(port), *args)
            assert (
                one_line(done) == f"magnetar: port {port} on 127.0.0.1 is in use (choose another with --port)"
            )


def test_a_data_dir_in_use_by_another_worker(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    first = subprocess.Popen(
        [sys.executable, "-m", "engine", "standalone", "--data-dir", str(data), "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        assert "ready on" in first.stdout.readline()
        for command in ("standalone", "localrun"):
            line = one_line(magnetar(*commands(data)[command]))
            assert (
                line == f"magnetar: data dir {data} is in use by another magnetar process (pid {first.pid})"
            )
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)


def test_a_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "f.yaml"
    config.write_text("name: f\ninputs: [i]\nparallelism: many\n")
    line = one_line(
        magnetar("functions", "localrun", "--function-config-file", str(config), "--py", str(EXAMPLE))
    )
    assert "parallelism" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    url = f"pulsar://127.0.0.1:{free_port()}"
    done = magnetar("--debug", *commands(tmp_path / "d", "--broker-url", url)["worker"])
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert (
        done.stderr.strip().splitlines()[-1]
        == f"magnetar: cannot reach the broker at {url}: Connection refused"
    )
    after = magnetar(*commands(tmp_path / "e", "--broker-url", url, "--debug")["worker"])
    assert "Traceback (most recent call last)" in after.stderr and after.returncode == 2
    assert os.path.isdir(tmp_path / "d")
