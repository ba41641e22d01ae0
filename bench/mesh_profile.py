"""Where each microsecond of the mesh chain goes: the worker's threads in both arrangements.

Command (run it on a quiet machine; sampling slows the run, the shares are what counts)::

    .venv/bin/python bench/mesh_profile.py --messages 200000

Runs the chain of ``bench/mesh.py`` (data-generator -> function -> function -> file
sink, separate and fused) on one embedded broker and one worker, and for each run:

* the rate over the whole run and once the sink's file holds its first line;
* each worker thread's CPU from ``/proc/<pid>/task/*/stat`` over the run, per message,
  named by the Python thread ``py-spy`` saw on that OS thread (source, each function
  instance, the sink, the worker's own; unnamed: the client's C++ threads);
* for the source, function and sink threads, a ``py-spy`` sample of the run folded
  into the steps of their path (publish, receive, the dispatch of decode/call/encode
  and send, acknowledgements, the sink's write), each given in CPU µs per message.

Needs ``py-spy`` (``pip install -e '.[bench]'``) and ptrace permission on the worker.
Writes ``bench/results/mesh-profile-<time>.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import mesh  # noqa: E402

from engine.broker import EmbeddedBroker  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Steps of a member's path, matched against a sample's function names (first match wins).
STEPS = [
    ("acknowledge inputs (one client call each)", ("FlushTracker.drain", "InputConsumer.ack")),
    ("receive (batch_receive)", ("InputConsumer.receive",)),
    ("sink write (+ fsync)", ("FileSink.write",)),
    ("decode records for the sink", ("records_of",)),
    ("flush (per batch)", ("flush_async",)),
    ("fused stages, in process", ("FusedSourceInstance._through_stages",)),
    ("settle source records", ("SourceInstance._apply",)),
    ("publish (build + send_async)", ("SourceInstance._send",)),
    ("generate records", ("DataGeneratorSource.read",)),
    ("decode / call / encode / send", ("AtLeastOnce.settle (",)),
]
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\)(?:: (?P<name>.*))?$")
_NAMESPACE = re.compile(r"public/bench[0-9a-f]+/")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user+system) of each thread of ``pid``, by OS thread id."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                stat = fh.read()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


def fold(raw_path: str) -> dict[int, tuple[str, collections.Counter[str]]]:
    """Per OS thread id: its Python thread name and samples per step, from a py-spy ``raw`` file."""
    threads: dict[int, tuple[str, collections.Counter[str]]] = {}
    with open(raw_path) as fh:
        for line in fh:
            stack, _, count = line.rstrip().rpartition(" ")
            head, _, rest = stack.partition(";")
            m = _THREAD.match(head)
            if m is None:
                continue
            tid = int(m["tid"])
            name = _NAMESPACE.sub("", m["name"] or "")
            known = threads.get(tid)
            if known is None or (name and not known[0]):
                threads[tid] = (name, known[1] if known else collections.Counter())
            step = next((s for s, needles in STEPS if any(n in rest for n in needles)), "other")
            threads[tid][1][step] += int(count)
    return threads


def _run(
    url: str, work: str, worker_pid: int, n: int, fused: bool, spy: str, rate: int, timeout: float
) -> dict[str, Any]:
    ns = f"bench{uuid.uuid4().hex[:6]}"
    out_dir = os.path.join(work, ns)
    os.makedirs(out_dir)
    mesh_file = os.path.join(work, f"{ns}.yaml")
    with open(mesh_file, "w") as fh:
        yaml.safe_dump(mesh._mesh(ns, out_dir, n, fused), fh)
    raw_path = os.path.join(work, f"{ns}.spy.txt")
    sampler = subprocess.Popen(
        [spy, "record", "--pid", str(worker_pid), "--rate", str(rate), "--nonblocking",
         "--format", "raw", "--output", raw_path, "--threads"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    cpu0 = thread_cpu(worker_pid)
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "engine", "mesh", "create", "-f", mesh_file, "--no-wait", "--admin-url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        sampler.kill()
        raise RuntimeError(f"mesh create failed: {res.stderr}")
    target = os.path.join(out_dir, "out.txt")
    first: tuple[float, int] | None = None
    while (count := mesh._lines(target)) < n:
        now = time.perf_counter() - t0
        if count and first is None:
            first = (now, count)
        if now > timeout:
            sampler.kill()
            raise RuntimeError(f"only {count} of {n} messages reached the sink in {timeout:.0f} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    cpu1 = thread_cpu(worker_pid)
    sampler.send_signal(signal.SIGINT)
    sampler.wait(60)
    subprocess.run(
        [sys.executable, "-m", "engine", "mesh", "delete", "--tenant", "public", "--namespace", ns,
         "--name", "bench", "--admin-url", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    first = first or (elapsed, 0)
    named = fold(raw_path) if os.path.exists(raw_path) else {}
    per_thread: dict[str, float] = collections.defaultdict(float)
    steps: dict[str, dict[str, float]] = {}
    for tid, cpu in cpu1.items():
        used = cpu - cpu0.get(tid, 0.0)
        if used <= 0:
            continue
        name, counts = named.get(tid, ("", collections.Counter()))
        label = name or "client threads (C++)"
        us = used / n * 1e6
        per_thread[label] += us
        total = sum(counts.values())
        if name.startswith(("source-", "instance-")) and total:
            steps[label] = {k: round(v / total * us, 2) for k, v in counts.most_common()}
    return {
        "mode": "fused" if fused else "separate",
        "messages": n,
        "msg_per_s": round(n / elapsed, 1),
        "first_output_s": round(first[0], 3),
        "flowing_msg_per_s": round((n - first[1]) / (elapsed - first[0]), 1) if elapsed > first[0] else None,
        "worker_cpu_us_per_msg": round(sum(per_thread.values()), 2),
        "threads_us_per_msg": {k: round(v, 2) for k, v in sorted(per_thread.items(), key=lambda kv: -kv[1])},
        "steps_us_per_msg": steps,
    }


def _tables(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| mode | msg/s | msg/s once flowing | worker CPU µs/msg | per thread (µs/msg) |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        per = ", ".join(f"{k} {v:.1f}" for k, v in r["threads_us_per_msg"].items() if v >= 0.1)
        lines.append(
            f"| {r['mode']} | {r['msg_per_s']:,.0f} | {r['flowing_msg_per_s'] or 0:,.0f} | "
            f"{r['worker_cpu_us_per_msg']} | {per} |"
        )
    for r in runs:
        lines += ["", f"Steps of `{r['mode']}` (CPU µs/msg):", "", "| thread | steps |", "|---|---|"]
        for thread, steps in r["steps_us_per_msg"].items():
            lines.append(
                f"| {thread} | " + ", ".join(f"{k} {v}" for k, v in steps.items() if v >= 0.05) + " |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--modes", default="separate,fused", help="comma-separated: separate, fused")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one run may take")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    work = tempfile.mkdtemp(prefix="magnetar-mesh-profile-")
    shutil.copy(os.path.join(os.path.dirname(HERE), "engine", "examples", "exclamation.py"), work)
    broker = EmbeddedBroker(os.path.join(work, "broker")).start()
    worker = None
    try:
        # The thread runtime keeps every member's threads in the worker, where py-spy samples them.
        worker, url = mesh._start_worker(broker, work, runtime="thread")
        runs = [
            _run(url, work, worker.pid, args.messages, mode == "fused", spy, args.rate, args.timeout)
            for mode in args.modes.split(",")
        ]
        print(_tables(runs))
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        path = os.path.join(HERE, "results", f"mesh-profile-{time.strftime('%Y%m%dT%H%M%S')}.json")
        with open(path, "w") as fh:
            json.dump(runs, fh, indent=2)
        print(f"\n(wrote {os.path.relpath(path, os.path.dirname(HERE))})", file=sys.stderr)
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
