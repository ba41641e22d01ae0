"""``magnetar standalone`` as a newcomer meets it: both URLs printed, the broker on 6650 when
that port is free, the Pulsar client's log in a file with a summary on the terminal."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pulsar

from engine.broker import free_port
from engine.cli.client_log import ClientLogSummary
from tests.integration.harness import consume, produce


@contextmanager
def standalone(data: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "standalone", "--data-dir", str(data), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=open(data.parent / f"{data.name}.stderr", "w"),
        text=True,
    )
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        assert "ready on" in lines[0], lines
        yield proc, lines
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


def _urls(lines: list[str]) -> tuple[str, str]:
    admin = lines[1].split("admin URL:")[1].split()[0]
    broker = lines[2].split("broker URL:")[1].split()[0]
    return admin, broker


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _roundtrip(broker_url: str, tag: str) -> None:
    client = pulsar.Client(broker_url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
    try:
        produce(client, f"{tag}-t", [tag])
        assert [m.data().decode() for m in consume(client, f"{tag}-t", 1)] == [tag]
    finally:
        client.close()


def test_standalone_prints_both_urls_and_keeps_client_noise_off_the_terminal(tmp_path: Path) -> None:
    data = tmp_path / "sa"
    # 6650 when free (as `pulsar standalone`); when something else holds it (another test's
    # standalone may, when tests run in parallel), the fallback, and the terminal says why.
    with standalone(data) as (_proc, lines):
        admin, broker = _urls(lines)
        assert admin.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(admin + "/initialized", timeout=10) as resp:
            assert resp.status == 204
        assert broker.startswith("pulsar://127.0.0.1:")
        _roundtrip(broker, "sa")
    stderr = (tmp_path / "sa.stderr").read_text()
    assert broker == "pulsar://127.0.0.1:6650" or "port 6650 is in use" in stderr, (broker, stderr)
    client_log = (data / "pulsar-client.log").read_text()
    assert (data / "pulsar-client.log").stat().st_mode & 0o777 == 0o600
    assert "Failed to getLastMessageId" in client_log, "the client's routine errors go to its log file"
    assert "getLastMessageId" not in stderr and "ERROR" not in stderr, stderr


def test_standalone_takes_a_free_port_when_6650_is_taken(tmp_path: Path) -> None:
    holder = None
    if _port_free(6650):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 6650))
        holder.listen()
    try:
        with standalone(tmp_path / "sb") as (_proc, lines):
            _admin, broker = _urls(lines)
            assert broker != "pulsar://127.0.0.1:6650"
            _roundtrip(broker, "sb")
        assert "port 6650 is in use" in (tmp_path / "sb.stderr").read_text()
    finally:
        if holder is not None:
            holder.close()


def test_explicit_broker_port_and_a_bad_one(tmp_path: Path) -> None:
    port = free_port()
    with standalone(tmp_path / "sc", "--broker-port", str(port)) as (_proc, lines):
        assert _urls(lines)[1] == f"pulsar://127.0.0.1:{port}"
    bad = subprocess.run(
        [sys.executable, "-m", "engine", "standalone", "--broker-port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--broker-port: '70000': expected a TCP port, 1 to 65535" in bad.stderr


def test_client_log_summary_reports_errors_that_matter_once(tmp_path: Path) -> None:
    path = tmp_path / "pulsar-client.log"
    path.write_text("2026-01-01 00:00:00.000 ERROR [1] X:1 | before the summary started\n")
    out = io.StringIO()
    summary = ClientLogSummary(str(path), stream=out)
    assert summary.check() is None, "what was there before is not news"
    with open(path, "a") as fh:
        fh.write(
            "2026-01-01 00:00:01.000 WARN  [1] ClientConnection:1 | error: (Topic has no messages)\n"
            "2026-01-01 00:00:01.000 ERROR [1] ConsumerImpl:1725 | [t, probe, 1] Failed to getLastMessageId\n"
        )
    assert summary.check() is None, "routine lines are not counted"
    with open(path, "a") as fh:
        fh.write(
            "2026-01-01 00:00:02.000 WARN  [1] ClientConnection:1 | connection closed\n"
            "2026-01-01 00:00:02.000 ERROR [1] ProducerImpl:9 | [t] Failed to create producer: Timeout\n"
            "2026-01-01 00:00:02.000 ERROR [1] ProducerImpl:9 | [t] half a line"
        )
    line = summary.check()
    assert line == (
        "magnetar: the Pulsar client logged 1 error(s) and 1 warning(s); latest: "
        f"[t] Failed to create producer: Timeout (all in {path})"
    )
    with open(path, "a") as fh:
        fh.write(" finished\n")
    assert "latest: [t] half a line finished" in (summary.check() or "")
    assert summary.check() is None
    os.remove(path)
    assert summary.check() is None
