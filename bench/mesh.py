"""Function Mesh benchmark: a three-stage chain as separate members vs fused (``fuse: true``).

Command (the lead runs it at full scale, on a quiet machine)::

    .venv/bin/python bench/mesh.py --messages 200000 --repeat 3

Smoke run: ``.venv/bin/python bench/mesh.py --messages 2000 --repeat 1``.

One embedded pulsar-lite broker and one worker process (its default process runtime: the
members run in its child processes, whose CPU is counted with the worker's) serve every
run. Each run creates, in a namespace of its own, the mesh ``data-generator source ->
exclamation function -> exclamation function -> file sink`` (STRING records of 16
bytes, as fast as the source makes them, ATLEAST_ONCE), either as four members
(``separate``: three topics between them) or with ``fuse: true``, which takes in the
source and the sink as well (``fused``: one source member that calls both functions
and the sink's ``write`` in process; no topic, no SerDe between the stages). A run is
timed from the create request until the sink's file holds N lines; throughput is N
over that time, CPU is the worker's and the broker's user+system time over the run per
message (start-up of the members included). The ratio is fused over separate in the
same repeat (target: >= 2x). Beside it, for what start-up hides: when the sink's file
first held a line, and the rate from then on (the lines still to come over the time
they took), with its ratio; start-up (the CLI's own process start, the create, the
members' start) is the same work in both arrangements, so it narrows the whole-run
ratio. Writes ``bench/results/mesh-<time>.json`` and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from e2e import _proc_cpu_seconds as _tree_cpu_seconds  # noqa: E402  (bench/ is the script's path)

from engine.broker import EmbeddedBroker, free_port  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User+system time of ``pid`` with its threads and reaped children."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / _CLK_TCK


def _mesh(ns: str, out_dir: str, messages: int, fused: bool) -> dict[str, Any]:
    gen, mid, out = (f"persistent://public/{ns}/{t}" for t in ("generated", "mid", "loud"))
    function = {
        "className": "exclamation.ExclamationFunction",
        "replicas": 1,
        "python": {"py": "exclamation.py"},
    }
    return {
        "apiVersion": "compute.functionmesh.io/v1alpha1",
        "kind": "FunctionMesh",
        "metadata": {"name": "bench"},
        "spec": {
            "fuse": fused,
            "sources": [
                {
                    "name": "gen",
                    "tenant": "public",
                    "namespace": ns,
                    "sourceType": "data-generator",
                    "output": {"topic": gen},
                    "sourceConfig": {"count": messages, "shape": "STRING", "sizeBytes": 16},
                }
            ],
            "functions": [
                {
                    **function,
                    "name": "one",
                    "tenant": "public",
                    "namespace": ns,
                    "input": {"topics": [gen]},
                    "output": {"topic": mid},
                    "subscriptionPosition": "earliest",
                },
                {
                    **function,
                    "name": "two",
                    "tenant": "public",
                    "namespace": ns,
                    "input": {"topics": [mid]},
                    "output": {"topic": out},
                    "subscriptionPosition": "earliest",
                },
            ],
            "sinks": [
                {
                    "name": "store",
                    "tenant": "public",
                    "namespace": ns,
                    "sinkType": "file",
                    "input": {"topics": [out]},
                    "subscriptionPosition": "earliest",
                    "sinkConfig": {"outputDirectory": out_dir, "fileName": "out.txt"},
                }
            ],
        },
    }


def _lines(path: str) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def _run_one(
    url: str, work: str, worker_pid: int, broker_pid: int, messages: int, fused: bool, timeout: float
) -> dict[str, Any]:
    ns = f"bench{uuid.uuid4().hex[:6]}"
    out_dir = os.path.join(work, ns)
    os.makedirs(out_dir)
    mesh_file = os.path.join(work, f"{ns}.yaml")
    with open(mesh_file, "w") as fh:
        yaml.safe_dump(_mesh(ns, out_dir, messages, fused), fh)
    # The worker's whole tree: with the process runtime the members run in its children.
    cpu0 = _tree_cpu_seconds(worker_pid), _cpu_seconds(broker_pid)
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "engine", "mesh", "create", "-f", mesh_file, "--no-wait", "--admin-url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        raise RuntimeError(f"mesh create failed: {res.stderr}")
    target = os.path.join(out_dir, "out.txt")
    first: tuple[float, int] | None = None  # (seconds, lines) when the sink's file first held a line
    while (count := _lines(target)) < messages:
        now = time.perf_counter() - t0
        if count and first is None:
            first = (now, count)
        if now > timeout:
            raise RuntimeError(f"only {count} of {messages} messages reached the sink in {timeout:.0f} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    if first is None:  # every line arrived between two polls
        first = (elapsed, 0)
    flowing = elapsed - first[0]
    worker_cpu = _tree_cpu_seconds(worker_pid) - cpu0[0]
    broker_cpu = _cpu_seconds(broker_pid) - cpu0[1]
    subprocess.run(
        [sys.executable, "-m", "engine", "mesh", "delete", "--tenant", "public", "--namespace", ns,
         "--name", "bench", "--admin-url", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return {
        "mode": "fused" if fused else "separate",
        "messages": messages,
        "seconds": round(elapsed, 3),
        "msg_per_s": round(messages / elapsed, 1),
        "first_output_s": round(first[0], 3),
        "flowing_msg_per_s": round((messages - first[1]) / flowing, 1) if flowing > 0 else None,
        "worker_cpu_us_per_msg": round(worker_cpu / messages * 1e6, 2),
        "broker_cpu_us_per_msg": round(broker_cpu / messages * 1e6, 2),
        "cpu_us_per_msg": round((worker_cpu + broker_cpu) / messages * 1e6, 2),
    }


def _start_worker(
    broker: EmbeddedBroker, work: str, runtime: str | None = None
) -> tuple[subprocess.Popen[str], str]:
    """A worker on ``broker`` (``runtime``: its ``--runtime``, else its default); its process and URL."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "engine", "worker", "--broker-url", broker.url, "--broker-kind", "pulsar-lite",
        "--worker-id", "bench", "--port", str(port), "--data-dir", os.path.join(work, "worker"),
        "--functions-namespace", f"public/benchfn{uuid.uuid4().hex[:4]}",
        *(["--runtime", runtime] if runtime else []),
    ]  # fmt: skip
    log = open(os.path.join(work, "worker.log"), "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready on" not in line:
        raise RuntimeError(f"the worker did not start: {line!r}; see {log.name}")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/admin/v2/worker/cluster/leader/ready", timeout=2) as resp:
                if json.loads(resp.read()):
                    return proc, url
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the worker did not take office")


def _table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| repeat | mode | msg/s | CPU µs/msg (worker + broker) | worker | broker | fused/separate "
        "| first output (s) | msg/s once flowing | fused/separate once flowing |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_repeat: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        by_repeat.setdefault(r["repeat"], {})[r["mode"]] = r
    for rep, modes in sorted(by_repeat.items()):
        for mode in ("separate", "fused"):
            r = modes.get(mode)
            if r is None:
                continue
            ratio = flowing_ratio = ""
            base = modes.get("separate")
            if mode != "separate" and base is not None:
                ratio = f"{r['msg_per_s'] / base['msg_per_s']:.2f}x"
                if r.get("flowing_msg_per_s") and base.get("flowing_msg_per_s"):
                    flowing_ratio = f"{r['flowing_msg_per_s'] / base['flowing_msg_per_s']:.2f}x"
            flowing = f"{r['flowing_msg_per_s']:,.0f}" if r.get("flowing_msg_per_s") else ""
            lines.append(
                f"| {rep} | {mode} | {r['msg_per_s']:,.0f} | {r['cpu_us_per_msg']} | "
                f"{r['worker_cpu_us_per_msg']} | {r['broker_cpu_us_per_msg']} | {ratio} | "
                f"{r['first_output_s']} | {flowing} | {flowing_ratio} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one run may take")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="magnetar-bench-mesh-")
    shutil.copy(os.path.join(os.path.dirname(HERE), "engine", "examples", "exclamation.py"), work)
    broker = EmbeddedBroker(os.path.join(work, "broker")).start()
    worker = None
    try:
        assert broker.process is not None
        worker, url = _start_worker(broker, work)
        runs = []
        for rep in range(1, args.repeat + 1):
            for fused in (False, True):
                r = _run_one(url, work, worker.pid, broker.process.pid, args.messages, fused, args.timeout)
                r["repeat"] = rep
                runs.append(r)
                print(json.dumps(r), file=sys.stderr)
        table = _table(runs)
        print(table)
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        path = os.path.join(HERE, "results", f"mesh-{time.strftime('%Y%m%dT%H%M%S')}.json")
        with open(path, "w") as fh:
            json.dump({"messages": args.messages, "runs": runs, "table": table}, fh, indent=2)
        print(f"wrote {path}", file=sys.stderr)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
