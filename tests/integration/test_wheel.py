"""The release artefacts: sdist and manylinux wheel build, and the wheel runs with no compiler."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LOCALRUN_CHECK = r"""
import signal, subprocess, sys, time
import pulsar
proc = subprocess.Popen([sys.argv[1], "functions", "localrun", "--py", sys.argv[2],
                         "--classname", "exclaim_example.Exclaim", "--inputs", "in", "--output", "out",
                         "--subs-position", "Earliest", "--data-dir", sys.argv[3]],
                        stderr=subprocess.PIPE, text=True)
line = proc.stderr.readline()
assert "native hot path" in line, line
url = line.split(" on ")[1].split(";")[0]
client = pulsar.Client(url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
producer = client.create_producer("in", block_if_queue_full=True)
for word in ("x", "y"):
    producer.send(word.encode())
consumer = client.subscribe("out", "check", initial_position=pulsar.InitialPosition.Earliest)
got = sorted(consumer.receive(20000).data() for _ in range(2))
client.close()
proc.send_signal(signal.SIGINT)
assert proc.wait(30) == 0
assert got == [b"x!", b"y!"], got
print("WHEEL-OK")
"""


@pytest.mark.slow
def test_wheel_installs_and_runs_without_a_compiler(tmp_path: Path) -> None:
    out = tmp_path / "wheelhouse"
    env = {**os.environ, "PYTHON": sys.executable}
    build = subprocess.run(
        ["bash", str(ROOT / "ci" / "build_wheel.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1 and "manylinux" in wheels[0].name, [p.name for p in out.iterdir()]
    assert list(out.glob("magnetar-*.tar.gz")), "an sdist is built too"
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert any(n.startswith("engine/hotpath/native/dispatch.") and n.endswith(".so") for n in names)
    assert any(n.endswith("InstanceCommunication_pb2.py") for n in names)
    assert not any(n.endswith((".c", ".pyx")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bare_path = str(venv / "bin")  # nothing else on PATH: no compiler can be found
    bare = {"PATH": bare_path, "HOME": str(tmp_path), "CC": "/nonexistent/cc"}
    inst = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--only-binary",
            ":all:",
            str(wheels[0]),
        ],
        env=bare,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert inst.returncode == 0, inst.stderr[-3000:]
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            LOCALRUN_CHECK,
            str(venv / "bin" / "magnetar"),
            str(ROOT / "tests" / "integration" / "exclaim_example.py"),
            str(tmp_path / "data"),
        ],
        env={**bare, "MAGNETAR_REQUIRE_NATIVE": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(tmp_path),
    )
    assert "WHEEL-OK" in check.stdout, check.stdout[-2000:] + check.stderr[-3000:]
