"""The release artefacts: an sdist and a manylinux wheel per supported CPython, each of which
installs and runs a localrun with no compiler in reach."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
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


PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def _tag(version: str) -> str:
    return "cp" + version.replace(".", "")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sdist and every wheel, built once for all the tests of this module."""
    out = tmp_path_factory.mktemp("wheelhouse")
    env = {**os.environ, "PYTHON": sys.executable, "MAGNETAR_WHEEL_PYTHONS": " ".join(PYTHONS)}
    t0 = time.monotonic()
    build = subprocess.run(
        ["bash", str(ROOT / "ci" / "build_wheel.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"\nbuilt the sdist and {len(PYTHONS)} wheels in {time.monotonic() - t0:.0f}s")
    yield out


def test_find_python_names_where_it_looked() -> None:
    missing = subprocess.run(
        ["bash", str(ROOT / "ci" / "find_python.sh"), "3.99"], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode != 0
    assert "no working CPython 3.99" in missing.stderr and "versions/3.99" in missing.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test to ask for the wheelhouse waits for the builds
def test_sdist_and_one_manylinux_wheel_per_python(wheelhouse: Path) -> None:
    wheels = sorted(p.name for p in wheelhouse.glob("*.whl"))
    assert len(wheels) == len(PYTHONS), wheels
    for version in PYTHONS:
        tag = _tag(version)
        (name,) = [w for w in wheels if f"-{tag}-{tag}-" in w]
        assert "manylinux" in name, name
        names = zipfile.ZipFile(wheelhouse / name).namelist()
        abi = f"cpython-{version.replace('.', '')}"
        assert any(n.startswith(f"engine/hotpath/native/dispatch.{abi}") and n.endswith(".so") for n in names)
        assert any(n.endswith("InstanceCommunication_pb2.py") for n in names)
        assert any(n == "engine/dashboard/static/index.html" for n in names)
        assert not any(n.endswith((".c", ".pyx")) for n in names)
    assert list(wheelhouse.glob("magnetar-*.tar.gz")), "an sdist is built too"


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("version", PYTHONS)
def test_wheel_installs_and_runs_without_a_compiler(wheelhouse: Path, version: str, tmp_path: Path) -> None:
    tag = _tag(version)
    (wheel,) = wheelhouse.glob(f"*-{tag}-{tag}-*manylinux*.whl")
    python = subprocess.run(
        ["bash", str(ROOT / "ci" / "find_python.sh"), version], capture_output=True, text=True, timeout=30
    )
    assert python.returncode == 0, python.stderr
    venv = tmp_path / "venv"
    subprocess.run([python.stdout.strip(), "-m", "venv", str(venv)], check=True, timeout=300)
    bare_path = str(venv / "bin")  # nothing else on PATH: no compiler can be found
    bare = {"PATH": bare_path, "HOME": str(tmp_path), "CC": "/nonexistent/cc"}
    # pip's own configuration (mirrors, certificates) still applies: it lives in files, not $HOME.
    inst = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--only-binary",
            ":all:",
            str(wheel),
        ],
        env={**bare, "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))},
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
    version_line = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sys, engine; print(sys.version_info[:2], engine.__file__)",
        ],
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert f"({version.replace('.', ', ')})" in version_line.stdout, version_line.stdout + version_line.stderr
    assert str(venv) in version_line.stdout, "the engine imported is the wheel's, not the checkout's"
