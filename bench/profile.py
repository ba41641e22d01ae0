"""Where each microsecond of the exclamation path goes: Magnetar native vs the tuned relay.

Command (what bench/RESULTS.md reports; run it on a quiet machine)::

    .venv/bin/python bench/profile.py --messages 1000000

Each contender runs as in ``bench/e2e.py`` (fresh pulsar-lite broker, N pre-filled
100-byte messages, timed until an outside consumer saw the N-th output). On top:

* per-thread CPU of the contender's process from ``/proc/<pid>/task/*/stat`` at that
  moment, by Python thread name (threads py-spy never saw run Python: the client's own);
* for the thread that runs the loop, a ``py-spy`` sample (``--native``) of the whole run,
  folded into the steps of the path (receive, decode/call/encode/send, ack, flush,
  crash ledger, ...), each step given in CPU microseconds per message (its share of the
  samples times that thread's CPU).

Needs ``py-spy`` (``pip install -e '.[bench]'``) and ptrace permission on the child.
Writes ``bench/results/profile-<time>.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import e2e  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Steps of the path, matched against a sample's function names, root to leaf (first match wins).
STEPS = [
    ("crash ledger (positions before the call)", ("CrashLedger.",)),
    ("ack (one call per input)", ("acks_ack_messages", "complete (engine/hotpath")),
    ("flush (per batch)", ("flush_async", "FlushTracker.flush", "ProducerPool.flush")),
    ("user function", ("ExclamationFunction.process",)),
    ("decode / encode", ("serde__", "Codec_")),
    ("build + send_async (client)", ("batching",)),
    ("receive (batch_receive)", ("InputConsumer.receive",)),
]
#: For samples no function name places: words of the source line of the deepest Python frame.
LINE_WORDS = [
    ("ack (one call per input)", ("ack(",)),
    ("flush (per batch)", ("flush(",)),
    ("decode / encode", ("decode(", "encode(")),
    ("build + send_async (client)", ("builder(", "content(", "send(", "build(", "partition_key")),
    ("receive (batch_receive)", ("receive(",)),
]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+\.py):(?P<line>\d+)\)$")
_THREAD = re.compile(r"^thread \((?P<tid>\d+)\)")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread (by OS thread id) of ``pid``."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                stat = fh.read()
        except FileNotFoundError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return out


def _line_text(path: str, line: int, cache: dict[str, list[str]]) -> str:
    full = path if os.path.isabs(path) else os.path.join(ROOT, path)
    if full not in cache:
        try:
            with open(full) as fh:
                cache[full] = fh.read().splitlines()
        except OSError:
            cache[full] = []
    lines = cache[full]
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _step(frames: list[str], cache: dict[str, list[str]]) -> str:
    for name, needles in STEPS:
        if any(n in f for f in frames for n in needles):
            return name
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        if m is None or "threading.py" in m["file"]:
            continue
        text = _line_text(m["file"], int(m["line"]), cache)
        for name, words in LINE_WORDS:
            if any(w in text for w in words):
                return name
        break
    return "other (loop, settlement, stats)"


def fold(raw_path: str) -> dict[int, tuple[str, dict[str, int]]]:
    """Per OS thread id: its Python name and samples per step, from a py-spy ``raw`` file."""
    threads: dict[int, tuple[str, collections.Counter[str]]] = {}
    cache: dict[str, list[str]] = {}
    with open(raw_path) as fh:
        for line in fh:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            m = _THREAD.match(frames[0])
            if m is None:
                continue
            tid = int(m["tid"])
            name = frames[0].partition(": ")[2] or frames[0]
            entry = threads.setdefault(tid, (name, collections.Counter()))
            entry[1][_step(frames[1:], cache)] += int(count)
    return {tid: (name, dict(counts)) for tid, (name, counts) in threads.items()}


def profile_run(mode: str, n: int, work_dir: str, spy: str | None, keep: str | None) -> dict[str, Any]:
    from engine.broker import EmbeddedBroker

    run_dir = tempfile.mkdtemp(prefix=f"prof-{mode}-", dir=work_dir)
    broker = EmbeddedBroker(os.path.join(run_dir, "broker")).start()
    client = e2e._client(broker.url)
    tag = uuid.uuid4().hex[:6]
    inp, out = f"prof-in-{tag}", f"prof-out-{tag}"
    raw_path = os.path.join(run_dir, "spy.txt")
    try:
        e2e.prefill(client, inp, n)
        observer = e2e.Observer(client, out, n)
        cmd = e2e.contender_command(mode, broker.url, inp, out, f"prof-{mode}", os.path.join(run_dir, "m"))
        with open(os.path.join(run_dir, "contender.log"), "wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        sampler = None
        if spy:
            sampler = subprocess.Popen(
                [spy, "record", "--pid", str(proc.pid), "--native", "--rate", "200",
                 "--format", "raw", "--output", raw_path, "--threads"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            if not observer.wait(900):
                raise RuntimeError(f"{mode}: {observer.count}/{n} outputs")
            seconds = (observer.done_at or time.perf_counter()) - t0
            threads = thread_cpu(proc.pid)
        finally:
            e2e._stop_process(proc)
            observer.close()
            if sampler is not None:
                sampler.wait(60)
        result: dict[str, Any] = {
            "mode": mode,
            "messages": n,
            "msg_per_s": n / seconds,
            "cpu_us_per_msg": sum(threads.values()) / n * 1e6,
        }
        named = fold(raw_path) if sampler is not None and os.path.exists(raw_path) else {}
        if named and keep:
            shutil.copy(raw_path, os.path.join(keep, f"profile-{mode}.pyspy.txt"))
        per_thread: dict[str, float] = collections.defaultdict(float)
        for tid, cpu in threads.items():
            label = named[tid][0] if tid in named else "client threads (C++)"
            per_thread[label] += cpu / n * 1e6
        result["threads_us_per_msg"] = dict(sorted(per_thread.items(), key=lambda kv: -kv[1]))
        if named:
            loop_tid = max((t for t in named if t in threads), key=lambda t: threads[t])
            name, counts = named[loop_tid]
            total = sum(counts.values())
            result["loop_thread"] = name
            result["loop_us_per_msg"] = threads[loop_tid] / n * 1e6
            result["loop_samples"] = total
            result["loop_steps_share"] = {k: v / total for k, v in counts.items()}
        return result
    finally:
        client.close()
        broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _tables(results: list[dict[str, Any]]) -> str:
    lines = ["| contender | msg/s | CPU µs/msg | per thread (µs/msg) |", "|---|---|---|---|"]
    for r in results:
        per = ", ".join(f"{k} {v:.1f}" for k, v in r["threads_us_per_msg"].items() if v >= 0.05)
        lines.append(f"| {r['mode']} | {r['msg_per_s']:,.0f} | {r['cpu_us_per_msg']:.1f} | {per} |")
    for r in results:
        if "loop_steps_share" not in r:
            continue
        loop_us = r["loop_us_per_msg"]
        title = f"Loop thread of `{r['mode']}` ({loop_us:.1f} µs/msg, {r['loop_samples']} samples):"
        lines += ["", title, ""]
        lines += ["| step | share | µs/msg |", "|---|---|---|"]
        for step, share in sorted(r["loop_steps_share"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {step} | {share:.1%} | {share * loop_us:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--modes", default="tuned,native")
    parser.add_argument("--no-spy", action="store_true", help="per-thread CPU only")
    parser.add_argument("--keep", metavar="DIR", help="keep each contender's py-spy samples in DIR")
    parser.add_argument(
        "--runtime",
        default="thread",
        help="localrun's --runtime for Magnetar (default thread: py-spy samples the instance "
        "thread in the process it starts; with process the instance runs in a child it never sees)",
    )
    args = parser.parse_args()
    e2e.LOCALRUN_RUNTIME = args.runtime
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    spy = None if args.no_spy else shutil.which("py-spy") or beside
    if spy and not os.path.exists(spy):
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]' (or pass --no-spy)")
    work = tempfile.mkdtemp(prefix="magnetar-profile-")
    try:
        results = [profile_run(m, args.messages, work, spy, args.keep) for m in args.modes.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"profile-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2)
    print(_tables(results))
    print(f"\n(wrote {os.path.relpath(path, ROOT)})")


if __name__ == "__main__":
    main()
