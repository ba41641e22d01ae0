"""``magnetar demo``: the embedded broker, the exclamation function, and a stream through it."""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time

import pulsar

from engine.config import parse_function_config, resolve
from engine.runtime.localrun import LocalRunner, LocalRunOptions

__all__ = ["add_demo_parser", "run_demo"]


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``magnetar demo``."""
    p = sub.add_parser(
        "demo", help="start an embedded broker and stream messages through an example function"
    )
    p.add_argument("--rate", type=int, default=20000, help="messages per second to send (default 20000)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (default: until Ctrl-C)")
    p.add_argument("--data-dir", help="where the broker keeps its data (default: a temporary directory)")
    p.add_argument("--hotpath", choices=["native", "pure"], help="hot-path twin (default: native if built)")
    p.set_defaults(handler=run_demo)


def _feed(producer: pulsar.Producer, rate: int, stop: threading.Event, sent: list[int]) -> None:
    tick = 0.01
    per_tick = max(1, rate // 100)
    next_at = time.monotonic()
    n = 0
    while not stop.is_set():
        for _ in range(per_tick):
            producer.send_async(f"hello {n}".encode(), None)
            n += 1
        sent[0] = n
        next_at += tick
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    producer.flush()
    sent[0] = n


def run_demo(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--duration``), printing one progress line a second."""
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="magnetar-demo-")
    spec = resolve(
        parse_function_config(
            {
                "className": "engine.examples.exclamation.ExclamationFunction",
                "name": "exclamation",
                "inputs": ["demo-in"],
                "output": "demo-out",
                "subscriptionPosition": "Earliest",
            }
        )
    )
    runner = LocalRunner(spec, LocalRunOptions(data_dir=data_dir, hotpath=args.hotpath))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"magnetar demo: starting the embedded broker in {data_dir}", flush=True)
    runner.start()
    assert runner.client is not None
    print(
        f"magnetar demo: broker {runner.broker_url}; function {spec.fqfn} "
        f"({runner.hot.name} hot path): demo-in -> input + '!' -> demo-out. Ctrl-C stops.",
        flush=True,
    )
    out = runner.client.subscribe(
        "demo-out",
        "demo-reader",
        initial_position=pulsar.InitialPosition.Earliest,
        consumer_type=pulsar.ConsumerType.Shared,
        batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(1000, -1, 100),
    )
    producer = runner.client.create_producer(
        "demo-in", batching_enabled=True, batching_max_publish_delay_ms=5, block_if_queue_full=True
    )
    sent = [0]
    feeder = threading.Thread(target=_feed, args=(producer, args.rate, stop, sent), daemon=True)
    feeder.start()
    received = 0
    sample = ""
    started = last = time.monotonic()
    last_received = 0
    try:
        while not stop.is_set():
            for msg in out.batch_receive():
                received += 1
                sample = msg.data().decode()
                out.acknowledge(msg)
            now = time.monotonic()
            if now - last >= 1.0:
                rate = (received - last_received) / (now - last)
                status = runner.status()
                print(
                    f"[{now - started:6.1f}s] sent {sent[0]:>9,}  processed {received:>9,}  "
                    f"{rate:>9,.0f} out msg/s  "
                    f"function's own call time {status[0]['averageLatency'] * 1000:.1f} us avg  "
                    f"last output {sample!r}",
                    flush=True,
                )
                last, last_received = now, received
            if args.duration and now - started >= args.duration:
                stop.set()
    finally:
        stop.set()
        feeder.join(10)
        out.close()
        runner.stop()
    ok = received > 0
    print(f"magnetar demo: stopped cleanly after {received:,} outputs", flush=True)
    if not os.environ.get("MAGNETAR_KEEP_DEMO_DATA") and not args.data_dir:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
    return 0 if ok else 1
