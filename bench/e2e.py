"""End-to-end benchmark: the exclamation function through Magnetar vs a raw client relay.

One embedded pulsar-lite broker; an input topic pre-filled with N messages of 100 bytes.
Each contender runs in its own process, reads the whole backlog on a fresh subscription,
and publishes ``input + "!"`` to its own output topic:

* ``raw``: the baseline, a hand-written relay on the public client API: batch receive,
  decode, apply the function, encode, ``send_async`` with no callback, ``flush``, ack;
* ``native`` / ``pure``: ``magnetar`` with the compiled or the pure-Python hot path, running
  ``engine.examples.exclamation.ExclamationFunction`` (a ``pulsar.Function``, default
  IdentitySerDe, ATLEAST_ONCE).

Throughput is N divided by the wall time from start to the last input acknowledged; CPU
is the contender process's user+system time per message (the broker's is not counted, and
is the same for all). Latency: a second phase sends at a fixed rate and measures, per
message, publish-to-output-received time (the send time travels in the message key, which
both contenders copy to the output).

Usage: ``python bench/e2e.py [--messages 200000] [--rate 5000] [--seconds 8]``; writes
``bench/results/e2e-<time>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def payload(i: int) -> bytes:
    """100 bytes of text (letters and spaces, no digits)."""
    word = PAYLOAD_LETTERS[i % 26 :] + PAYLOAD_LETTERS[: i % 26]
    return (word + b" " + word + b" " + word + b" " + word)[:100]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _client(url: str) -> pulsar.Client:
    return pulsar.Client(url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))


# -- contenders (child processes) -----------------------------------------------------------


def child_raw(args: argparse.Namespace) -> dict[str, Any]:
    client = _client(args.url)
    stop_at = args.count if args.count > 0 else None
    t0, c0 = time.perf_counter(), _cpu()
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
    print("ready", flush=True)
    n = 0
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        if stop_at is not None and n >= stop_at:
            break
        if stop_at is None and os.path.exists(args.stop_file):
            break
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
        n += len(msgs)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    rss = _rss_mb()
    client.close()
    return {"messages": n, "seconds": elapsed, "cpu_seconds": cpu, "rss_mb": rss}


def child_magnetar(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, ROOT)
    from engine.broker.client import BrokerOptions
    from engine.config import parse_function_config, resolve
    from engine.runtime.localrun import LocalRunner, LocalRunOptions

    spec = resolve(
        parse_function_config(
            {
                "className": "engine.examples.exclamation.ExclamationFunction",
                "name": "bench",
                "inputs": [args.input],
                "output": args.output,
                "subName": args.sub,
                "subscriptionPosition": "Earliest",
            }
        )
    )
    runner = LocalRunner(
        spec,
        LocalRunOptions(broker=BrokerOptions(url=args.url), data_dir=args.data_dir, hotpath=args.mode),
    )
    runner.prepare()
    t0, c0 = time.perf_counter(), _cpu()
    runner.start()
    print("ready", flush=True)
    inst = runner.instances[0]
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        if args.count > 0 and inst.stats.processed_ok >= args.count and inst._pending.outstanding() == 0:
            break
        if args.count <= 0 and os.path.exists(args.stop_file):
            break
        time.sleep(0.002)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    rss = _rss_mb()
    n = inst.stats.processed_ok
    runner.stop()
    return {"messages": n, "seconds": elapsed, "cpu_seconds": cpu, "rss_mb": rss, "hotpath": runner.hot.name}


# -- orchestration ----------------------------------------------------------------------------


def spawn(mode: str, url: str, inp: str, out: str, count: int, data_dir: str, stop_file: str) -> Any:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "child",
        "--mode",
        mode,
        "--url",
        url,
        "--input",
        inp,
        "--output",
        out,
        "--sub",
        f"bench-{mode}-{uuid.uuid4().hex[:6]}",
        "--count",
        str(count),
        "--data-dir",
        data_dir,
        "--stop-file",
        stop_file,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        raise RuntimeError(f"{mode} did not start: {line!r}")
    return proc


def finish(proc: Any) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


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


def throughput(client: pulsar.Client, url: str, inp: str, n: int, mode: str, data_dir: str) -> dict[str, Any]:
    out = f"bench-out-{mode}-{uuid.uuid4().hex[:6]}"
    proc = spawn(mode, url, inp, out, n, data_dir, "")
    result = finish(proc)
    result["msg_per_s"] = result["messages"] / result["seconds"]
    result["cpu_us_per_msg"] = result["cpu_seconds"] / result["messages"] * 1e6
    return result


def latency(
    client: pulsar.Client, url: str, mode: str, rate: int, seconds: float, data_dir: str
) -> dict[str, Any]:
    inp = f"bench-lat-in-{mode}-{uuid.uuid4().hex[:6]}"
    out = f"bench-lat-out-{mode}-{uuid.uuid4().hex[:6]}"
    stop_file = os.path.join(data_dir, f"stop-{uuid.uuid4().hex[:6]}")
    reader = client.subscribe(
        out, "lat", initial_position=pulsar.InitialPosition.Earliest, consumer_type=pulsar.ConsumerType.Shared
    )
    proc = spawn(mode, url, inp, out, 0, data_dir, stop_file)
    producer = client.create_producer(inp, batching_enabled=False, block_if_queue_full=True)
    lat_ms: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                msg = reader.receive(200)
            except pulsar.Timeout:
                continue
            lat_ms.append((time.time_ns() - int(msg.partition_key())) / 1e6)
            reader.acknowledge(msg)

    t = threading.Thread(target=read, daemon=True)
    t.start()
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
    done.set()
    t.join()
    open(stop_file, "w").close()
    finish(proc)
    reader.close()
    arr = np.array(lat_ms[int(len(lat_ms) * 0.1) :])  # skip warm-up
    return {
        "rate": rate,
        "sent": total,
        "received": len(lat_ms),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "max_ms": float(arr.max()),
    }


def main_run(args: argparse.Namespace) -> None:
    sys.path.insert(0, ROOT)
    from engine.broker import EmbeddedBroker

    data_dir = tempfile.mkdtemp(prefix="magnetar-bench-")
    broker = EmbeddedBroker(os.path.join(data_dir, "broker")).start()
    client = _client(broker.url)
    results: dict[str, Any] = {
        "messages": args.messages,
        "payload_bytes": 100,
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
        "throughput": {},
        "latency": {},
    }
    try:
        inp = f"bench-in-{uuid.uuid4().hex[:6]}"
        print(f"pre-filling {args.messages:,} messages ...", flush=True)
        prefill(client, inp, args.messages)
        modes = ["raw", "native", "pure"]
        for rnd in range(args.rounds):
            for mode in modes:
                r = throughput(client, broker.url, inp, args.messages, mode, data_dir)
                print(
                    f"round {rnd + 1} {mode:>6}: {r['msg_per_s']:>10,.0f} msg/s  "
                    f"{r['cpu_us_per_msg']:6.2f} us CPU/msg  rss {r['rss_mb']:.0f} MB",
                    flush=True,
                )
                results["throughput"].setdefault(mode, []).append(r)
        for mode in modes:
            r = latency(client, broker.url, mode, args.rate, args.seconds, data_dir)
            print(
                f"latency {mode:>6} @ {args.rate}/s: p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms "
                f"({r['received']}/{r['sent']})",
                flush=True,
            )
            results["latency"][mode] = r
    finally:
        client.close()
        broker.stop()
    best = {m: max(runs, key=lambda r: r["msg_per_s"]) for m, runs in results["throughput"].items()}
    results["best"] = best
    raw = best["raw"]["msg_per_s"]
    print("\n| contender | msg/s (best of rounds) | vs raw relay | CPU µs/msg | RSS MB | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("raw", "native", "pure"):
        b, lat = best[mode], results["latency"][mode]
        print(
            f"| {mode} | {b['msg_per_s']:,.0f} | {b['msg_per_s'] / raw:.0%} | {b['cpu_us_per_msg']:.2f} | "
            f"{b['rss_mb']:.0f} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} |"
        )
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
    run = sub.add_parser("run")
    run.add_argument("--messages", type=int, default=200_000)
    run.add_argument("--rounds", type=int, default=2)
    run.add_argument("--rate", type=int, default=5000)
    run.add_argument("--seconds", type=float, default=8.0)
    child = sub.add_parser("child")
    child.add_argument("--mode", choices=["raw", "native", "pure"], required=True)
    child.add_argument("--url", required=True)
    child.add_argument("--input", required=True)
    child.add_argument("--output", required=True)
    child.add_argument("--sub", required=True)
    child.add_argument("--count", type=int, required=True)
    child.add_argument("--data-dir", required=True)
    child.add_argument("--stop-file", default="")
    child.add_argument("--max-seconds", type=float, default=300.0)
    argv = sys.argv[1:] or ["run"]
    if argv[0] not in ("run", "child", "-h", "--help"):
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    if args.cmd == "child":
        result = child_raw(args) if args.mode == "raw" else child_magnetar(args)
        print(json.dumps(result), flush=True)
    else:
        main_run(args)


if __name__ == "__main__":
    main()
