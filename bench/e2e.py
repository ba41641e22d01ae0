"""End-to-end benchmark: the exclamation function through Magnetar vs two hand-written relays.

Command (what bench/RESULTS.md reports; run it on a quiet machine)::

    .venv/bin/python bench/e2e.py --messages 1000000 --repeat 3

Smoke run: ``.venv/bin/python bench/e2e.py --messages 20000 --repeat 1``. Add ``--pure``
to time the pure-Python hot path too, ``--latency-seconds 8`` for the latency phase.

Each run gets a fresh embedded pulsar-lite broker with an input topic pre-filled with
N messages of 100 bytes, and one contender that reads the whole backlog on a fresh
subscription and publishes ``input + "!"`` to a fresh output topic:

* ``tuned``: the fastest relay this client allows from Python, the baseline: the
  private ``_pulsar`` consumer and producer, ``batch_receive``, one ``MessageBuilder``
  per output, ``send_async(msg, None)``, ``flush``, then an ack per message;
* ``raw``: the same relay on the public client API (``send_async(bytes, None)``);
* ``native`` / ``pure``: ``magnetar functions localrun`` with ``--hotpath native`` or
  ``pure``, running ``engine.examples.exclamation.ExclamationFunction`` (default
  IdentitySerDe, ATLEAST_ONCE); the compiled twin reads, acks and sends through the
  client's C API (its direct views);
* ``native-binding`` (``--binding``): ``native`` with ``MAGNETAR_DIRECT_VIEWS=0``, i.e.
  through the client's Python binding as before the direct views.

Each contender is its own process, timed as a user runs it: from just before the
process is started until an outside consumer (subscribed to the output topic before
the start) has seen the N-th output. Throughput is N over that time; the ratio is to
the ``tuned`` run of the same repeat; CPU is the user+system time of the contender
process and everything below it (``/proc/<pid>/stat``: threads, live and reaped children;
localrun's process runtime works in a child of its fork server) at that moment, per
message, start-up included; RSS is summed over the same processes. ``--runtime thread``
times localrun with its instances on threads of its own process. The broker's CPU is not
counted (the same broker serves every contender). Writes ``bench/results/e2e-<time>.json``
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import numpy as np
import pulsar

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAYLOAD_LETTERS = b"abcdefghijklmnopqrstuvwxyz"
CONTENDERS = ("tuned", "raw", "native", "pure", "native-binding")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def payload(i: int) -> bytes:
    """100 bytes of text (letters and spaces, no digits)."""
    word = PAYLOAD_LETTERS[i % 26 :] + PAYLOAD_LETTERS[: i % 26]
    return (word + b" " + word + b" " + word + b" " + word)[:100]


def _client(url: str) -> pulsar.Client:
    return pulsar.Client(url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))


def _descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (a process-runtime localrun's fork server and children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def _one_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it ended meanwhile (its parent's reaped-children time then holds it)
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(v) for v in fields[11:15]) / _CLK_TCK


def _proc_cpu_seconds(pid: int) -> float:
    """User+system CPU of ``pid`` and its live descendants (all threads) and their reaped children."""
    return sum(_one_cpu_seconds(p) for p in _descendants(pid))


def _exited(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie not yet reaped: wait4 still gets its rusage)."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "Z"


def _one_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return 0.0
    return 0.0


def _proc_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its live descendants, summed (shared pages counted in each)."""
    return sum(_one_rss_mb(p) for p in _descendants(pid))


# -- the relays (child processes) -------------------------------------------------------


def relay(args: argparse.Namespace) -> None:
    """Relay ``input + "!"`` from ``args.input`` to ``args.output`` until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = _client(args.url)
    consumer = client.subscribe(
        args.input,
        args.sub,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        receiver_queue_size=1000,
        batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(1000, -1, 2),
    )
    producer = client.create_producer(
        args.output,
        batching_enabled=True,
        batching_max_publish_delay_ms=1,
        block_if_queue_full=True,
        max_pending_messages=100000,
    )
    if args.mode == "tuned":
        _tuned_loop(consumer, producer, stop)
    else:
        _public_loop(consumer, producer, stop)
    client.close()


def _public_loop(consumer: Any, producer: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        msgs = consumer.batch_receive()
        if not msgs:
            continue
        for m in msgs:
            out = (m.data().decode("utf-8") + "!").encode("utf-8")
            key = m.partition_key()
            if key:
                producer.send_async(out, None, partition_key=key)
            else:
                producer.send_async(out, None)
        producer.flush()
        for m in msgs:
            consumer.acknowledge(m)


def _tuned_loop(consumer: Any, producer: Any, stop: threading.Event) -> None:
    import _pulsar  # bench/ may use the client's private objects; engine/ may not

    raw_consumer = consumer._consumer
    raw_producer = producer._producer
    builder = _pulsar.MessageBuilder
    receive = raw_consumer.batch_receive
    ack = raw_consumer.acknowledge
    send = raw_producer.send_async
    flush = raw_producer.flush
    while not stop.is_set():
        msgs = receive()
        if not msgs:
            continue
        for m in msgs:
            mb = builder()
            mb.content((m.data().decode("utf-8") + "!").encode("utf-8"))
            key = m.partition_key()
            if key:
                mb.partition_key(key)
            send(mb.build(), None)
        flush()
        for m in msgs:
            ack(m)


# -- orchestration ----------------------------------------------------------------------


def _magnetar_command() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "magnetar")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "engine.cli.main"]


#: ``magnetar functions localrun --runtime`` for the Magnetar contenders (``None``: its default).
LOCALRUN_RUNTIME: str | None = None


def contender_command(mode: str, url: str, inp: str, out: str, sub: str, data_dir: str) -> list[str]:
    """The command line a user would type to run contender ``mode``."""
    if mode in ("tuned", "raw"):
        return [
            sys.executable, os.path.abspath(__file__), "relay", "--mode", mode, "--url", url,
            "--input", inp, "--output", out, "--sub", sub,
        ]  # fmt: skip
    return [
        *_magnetar_command(), "functions", "localrun",
        "--broker-url", url, "--broker-kind", "pulsar-lite",
        "--classname", "engine.examples.exclamation.ExclamationFunction",
        "--name", f"bench-{mode}", "--inputs", inp, "--output", out,
        "--subs-name", sub, "--subs-position", "Earliest",
        "--hotpath", mode.split("-")[0], "--data-dir", data_dir,
        *(["--runtime", LOCALRUN_RUNTIME] if LOCALRUN_RUNTIME else []),
    ]  # fmt: skip


def contender_env(mode: str) -> dict[str, str]:
    """The environment contender ``mode`` runs with (``native-binding``: direct views off)."""
    env = dict(os.environ)
    if mode == "native-binding":
        env["MAGNETAR_DIRECT_VIEWS"] = "0"
    return env


class Observer:
    """Counts the outputs on one topic from a subscription made before they exist."""

    def __init__(self, client: pulsar.Client, topic: str, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done_at: float | None = None
        self.first_at: float | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._consumer = client.subscribe(
            topic,
            "observer",
            consumer_type=pulsar.ConsumerType.Exclusive,
            initial_position=pulsar.InitialPosition.Earliest,
            receiver_queue_size=5000,
            batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(5000, -1, 5),
        )
        self._thread = threading.Thread(target=self._run, name="observer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        receive = self._consumer._consumer.batch_receive  # cheapest read: no per-message wrapper
        while not self._stop.is_set():
            got = len(receive())
            if got and self.first_at is None:
                self.first_at = time.perf_counter()
            self.count += got
            if self.count >= self.expected and self.done_at is None:
                self.done_at = time.perf_counter()
                self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def prefill(client: pulsar.Client, topic: str, n: int) -> None:
    producer = client.create_producer(
        topic,
        batching_enabled=True,
        batching_max_publish_delay_ms=5,
        block_if_queue_full=True,
        max_pending_messages=50000,
    )
    for i in range(n):
        producer.send_async(payload(i), None)
    producer.flush()
    producer.close()


def _stop_process(proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """SIGTERM, then the exit status and total rusage (shutdown included) from wait4."""
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return {"cpu_seconds_total": usage.ru_utime + usage.ru_stime, "exit_code": proc.returncode}
        time.sleep(0.05)
    proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"cpu_seconds_total": usage.ru_utime + usage.ru_stime, "exit_code": proc.returncode, "killed": 1}


def throughput_run(mode: str, n: int, work_dir: str, max_seconds: float) -> dict[str, Any]:
    """One contender on a fresh broker and fresh topics; timed from process start."""
    sys.path.insert(0, ROOT)
    from engine.broker import EmbeddedBroker

    run_dir = tempfile.mkdtemp(prefix=f"run-{mode}-", dir=work_dir)
    broker = EmbeddedBroker(os.path.join(run_dir, "broker")).start()
    client = _client(broker.url)
    tag = uuid.uuid4().hex[:6]
    inp, out = f"bench-in-{tag}", f"bench-out-{tag}"
    try:
        prefill(client, inp, n)
        observer = Observer(client, out, n)
        cmd = contender_command(
            mode, broker.url, inp, out, f"bench-{mode}", os.path.join(run_dir, "magnetar")
        )
        with open(os.path.join(run_dir, "contender.log"), "wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=contender_env(mode)
            )
        try:
            deadline = t0 + max_seconds
            finished = False
            while not finished and time.perf_counter() < deadline and not _exited(proc.pid):
                finished = observer.wait(0.5)
            finished = finished or observer.wait(0)
            t1 = observer.done_at if finished and observer.done_at is not None else time.perf_counter()
            cpu = _proc_cpu_seconds(proc.pid)
            rss = _proc_rss_mb(proc.pid)
        finally:
            stopped = _stop_process(proc)
            observer.close()
        if not finished:
            with open(os.path.join(run_dir, "contender.log"), "rb") as log:
                tail = log.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError(
                f"{mode}: {observer.count}/{n} outputs (exit code {stopped['exit_code']}, "
                f"at most {max_seconds}s); its log ends:\n{tail}"
            )
        seconds = t1 - t0
        return {
            "mode": mode,
            "messages": n,
            "outputs_seen": observer.count,
            "seconds": seconds,
            "first_output_after_s": (observer.first_at or t1) - t0,
            "msg_per_s": n / seconds,
            "cpu_seconds": cpu,
            "cpu_us_per_msg": cpu / n * 1e6,
            "rss_mb": rss,
            "command": cmd,
            **stopped,
        }
    finally:
        client.close()
        broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def latency_run(mode: str, rate: int, seconds: float, work_dir: str) -> dict[str, Any]:
    """Publish at a fixed rate; per message, publish-to-output time (send time in the key)."""
    sys.path.insert(0, ROOT)
    from engine.broker import EmbeddedBroker

    run_dir = tempfile.mkdtemp(prefix=f"lat-{mode}-", dir=work_dir)
    broker = EmbeddedBroker(os.path.join(run_dir, "broker")).start()
    client = _client(broker.url)
    tag = uuid.uuid4().hex[:6]
    inp, out = f"bench-lat-in-{tag}", f"bench-lat-out-{tag}"
    lat_ms: list[float] = []
    done = threading.Event()
    try:
        reader = client.subscribe(out, "lat", initial_position=pulsar.InitialPosition.Earliest)
        producer = client.create_producer(inp, batching_enabled=False, block_if_queue_full=True)
        cmd = contender_command(
            mode, broker.url, inp, out, f"bench-{mode}", os.path.join(run_dir, "magnetar")
        )
        with open(os.path.join(run_dir, "contender.log"), "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=contender_env(mode)
            )

        def read() -> None:
            while not done.is_set():
                try:
                    msg = reader.receive(200)
                except pulsar.Timeout:
                    continue
                lat_ms.append((time.time_ns() - int(msg.partition_key())) / 1e6)
                reader.acknowledge(msg)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        try:
            # Wait until the contender is up: its first output answers a probe message.
            deadline = time.monotonic() + 60
            while not lat_ms and time.monotonic() < deadline:
                producer.send(payload(0), partition_key=str(time.time_ns()))
                time.sleep(0.2)
            lat_ms.clear()
            total = int(rate * seconds)
            start = time.perf_counter()
            for i in range(total):
                target = start + i / rate
                while (now := time.perf_counter()) < target:
                    time.sleep(min(0.0005, target - now))
                producer.send_async(payload(i), None, partition_key=str(time.time_ns()))
            producer.flush()
            deadline = time.monotonic() + 10
            while len(lat_ms) < total and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            done.set()
            thread.join(5)
            _stop_process(proc)
        arr = np.array(lat_ms[int(len(lat_ms) * 0.1) :] or [float("nan")])  # skip warm-up
        return {
            "mode": mode,
            "rate": rate,
            "sent": total,
            "received": len(lat_ms),
            "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()),
        }
    finally:
        client.close()
        broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _table(results: dict[str, Any], modes: list[str]) -> str:
    runs = results["throughput"]
    lines = [
        "| contender | msg/s per run | x tuned relay per run | CPU µs/msg per run | RSS MB |",
        "|---|---|---|---|---|",
    ]
    for mode in modes:
        mine = runs[mode]
        rates = ", ".join(f"{r['msg_per_s']:,.0f}" for r in mine)
        ratios = ", ".join(
            f"{r['msg_per_s'] / t['msg_per_s']:.2f}" for r, t in zip(mine, runs["tuned"], strict=True)
        )
        cpus = ", ".join(f"{r['cpu_us_per_msg']:.2f}" for r in mine)
        rss = statistics.median(r["rss_mb"] for r in mine)
        lines.append(f"| {mode} | {rates} | {ratios} | {cpus} | {rss:.0f} |")
    return "\n".join(lines)


def compile_engine() -> None:
    """Write the engine's bytecode, as installing a wheel does (an editable install has none).

    Without it, a machine with ``PYTHONDONTWRITEBYTECODE=1`` compiles every engine module
    at each start of a Magnetar contender (about 60 ms), which a user's install never does.
    """
    import compileall

    compileall.compile_dir(os.path.join(ROOT, "engine"), quiet=1)


def main_run(args: argparse.Namespace) -> None:
    modes = ["tuned", "raw", "native"] + (["pure"] if args.pure else [])
    modes += ["native-binding"] if args.binding else []
    compile_engine()
    work_dir = tempfile.mkdtemp(prefix="magnetar-bench-")
    command = " ".join(["python", "bench/e2e.py", *sys.argv[1:]])
    results: dict[str, Any] = {
        "command": command,
        "messages": args.messages,
        "payload_bytes": 100,
        "repeat": args.repeat,
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
        "throughput": {m: [] for m in modes},
        "latency": {},
    }
    try:
        for rnd in range(args.repeat):
            for mode in modes:
                r = throughput_run(mode, args.messages, work_dir, args.max_seconds)
                r["repeat"] = rnd + 1
                results["throughput"][mode].append(r)
                tuned = results["throughput"]["tuned"][rnd]["msg_per_s"]
                print(
                    f"repeat {rnd + 1} {mode:>6}: {r['msg_per_s']:>10,.0f} msg/s  "
                    f"{r['msg_per_s'] / tuned:5.2f}x tuned  {r['cpu_us_per_msg']:6.2f} us CPU/msg  "
                    f"rss {r['rss_mb']:.0f} MB",
                    flush=True,
                )
        if args.latency_seconds > 0:
            for mode in modes:
                lat = latency_run(mode, args.rate, args.latency_seconds, work_dir)
                results["latency"][mode] = lat
                print(
                    f"latency {mode:>6} @ {args.rate}/s: p50 {lat['p50_ms']:.2f} ms  "
                    f"p99 {lat['p99_ms']:.2f} ms ({lat['received']}/{lat['sent']})",
                    flush=True,
                )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    table = _table(results, modes)
    results["table"] = table
    print(f"\n{args.messages:,} messages of 100 bytes; `{command}`\n")
    print(table)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"e2e-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd")
    run = sub.add_parser("run", help="the benchmark (default)")
    run.add_argument("--messages", type=int, default=1_000_000, help="pre-filled input messages per run")
    run.add_argument("--repeat", "--rounds", type=int, default=3, help="runs of every contender")
    run.add_argument("--pure", action="store_true", help="also time the pure-Python hot path")
    run.add_argument(
        "--binding",
        action="store_true",
        help="also time the compiled hot path with its direct client views off (MAGNETAR_DIRECT_VIEWS=0)",
    )
    run.add_argument("--max-seconds", type=float, default=900.0, help="give up on a run after this long")
    run.add_argument(
        "--latency-seconds", "--seconds", type=float, default=0.0, help="latency phase length (0: skip)"
    )
    run.add_argument("--rate", type=int, default=5000, help="latency phase publish rate, msg/s")
    run.add_argument(
        "--runtime",
        choices=["process", "thread"],
        help="localrun's --runtime for the Magnetar contenders (default: localrun's own, process)",
    )
    child = sub.add_parser("relay", help="one relay contender (started by run)")
    child.add_argument("--mode", choices=["tuned", "raw"], required=True)
    child.add_argument("--url", required=True)
    child.add_argument("--input", required=True)
    child.add_argument("--output", required=True)
    child.add_argument("--sub", required=True)
    argv = sys.argv[1:] or ["run"]
    if argv[0] not in ("run", "relay", "-h", "--help"):
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    if args.cmd == "relay":
        relay(args)
    else:
        global LOCALRUN_RUNTIME
        LOCALRUN_RUNTIME = args.runtime
        main_run(args)


if __name__ == "__main__":
    main()
