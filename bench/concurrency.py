"""Concurrency, batch functions and windows against their serial baselines, in one run.

On one embedded pulsar-lite broker, each case pre-fills a topic and times an instance
(``LocalRunner``, native hot path) from its start until it has processed every input:

(a) ``async def`` awaiting ``asyncio.sleep(0.005)``, 500 in flight, vs the same work serial
    (``time.sleep(0.005)``); target >= 100x;
(b) an ``aiohttp`` GET of a local server that answers after 5 ms, async vs a serial
    ``urllib`` GET; target >= 100x. The server is a process of its own (uvloop), the
    function reuses one ``ClientSession`` without a connection limit; the same GETs by
    aiohttp alone (a plain loop, 500 in flight, no engine) are timed too: aiohttp's
    client CPU per request bounds this case, not the server;
(c) a blocking ``time.sleep(0.005)`` with ``concurrency: 64`` vs 1; target >= 30x;
(d) ``process_batch`` summing each batch with numpy vs the same sum per message;
(e) a count window of 1,000 summing its inputs; target >= 200,000 input msg/s, also
    given as a multiple of ``bench/e2e.py``'s tuned relay measured in the same run.

Usage: ``python bench/concurrency.py [--scale 1.0] [--cases abcde] [--relay-messages 200000]``;
writes ``bench/results/concurrency-<time>.json`` (with each contender's CPU per message)
and prints a Markdown table. Smoke run: ``--scale 0.2 --relay-messages 50000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

MOD = "bench.concurrency_functions"


def _serve(port: int) -> None:
    """Child process: an aiohttp server on loopback answering every GET after 5 ms (on uvloop)."""
    import uvloop
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0.005)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        backlog=4096,
        loop=uvloop.new_event_loop(),
    )


def _server() -> tuple[str, subprocess.Popen[bytes]]:
    """Start the 5 ms server in its own process (so it does not share the instance's GIL)."""
    from engine.broker.embedded import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return f"http://127.0.0.1:{port}/", proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the 5 ms HTTP server did not start")


def run_case(url: str, data_dir: str, config: dict[str, Any], payloads: list[bytes]) -> tuple[float, float]:
    """Messages per second of one instance over ``payloads``, and this process's CPU µs per message.

    The CPU is the bench process's own (the instance thread and the client's threads;
    the broker and the HTTP server are processes of their own), start-up included.
    """
    from engine.broker.client import BrokerOptions, make_client
    from engine.config import parse_function_config, resolve
    from engine.instance.options import InstanceOptions
    from engine.runtime.localrun import LocalRunner, LocalRunOptions

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    client = make_client(BrokerOptions(url=url, kind="pulsar-lite"))
    producer = client.create_producer(
        topic, batching_enabled=True, batching_max_publish_delay_ms=5, block_if_queue_full=True
    )
    for p in payloads:
        producer.send_async(p, None)
    producer.flush()
    client.close()
    cfg = {"subscriptionPosition": "Earliest", "inputs": [topic], **config}
    if "customSerdeInputs" in cfg:  # configs name their SerDe for "__topic__"
        (serde,) = cfg["customSerdeInputs"].values()
        cfg["customSerdeInputs"] = {topic: serde}
    cfg["className"] = cfg["className"] if "." in cfg["className"] else f"{MOD}.{cfg['className']}"
    runner = LocalRunner(
        resolve(parse_function_config(cfg)),
        LocalRunOptions(
            broker=BrokerOptions(url=url, kind="pulsar-lite"),
            data_dir=os.path.join(data_dir, uuid.uuid4().hex[:6]),
            hotpath="native",
            instance=InstanceOptions(),
        ),
    )
    runner.prepare()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    runner.start()
    stats = runner.instances[0].stats
    deadline = time.monotonic() + 600
    while stats.received < len(payloads) or stats.processed_ok + stats.user_exceptions < len(payloads):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config['className']}: {stats.processed_ok} of {len(payloads)} processed")
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    runner.stop()
    return len(payloads) / elapsed, cpu / len(payloads) * 1e6


def aiohttp_alone(url: str, requests: int, in_flight: int) -> tuple[float, float]:
    """GETs per second of aiohttp alone against ``url``, and its CPU µs per GET (this process)."""
    import aiohttp
    import uvloop

    async def run() -> tuple[float, float]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            todo = iter(range(requests))

            async def worker() -> None:
                for _ in todo:
                    async with session.get(url) as resp:
                        await resp.read()

            t0, cpu0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return time.perf_counter() - t0, time.process_time() - cpu0

    elapsed, cpu = uvloop.run(run())
    return requests / elapsed, cpu / requests * 1e6


def tuned_relay(messages: int, data_dir: str) -> float:
    """Messages per second of ``bench/e2e.py``'s tuned relay (receive, send, ack) on this machine now.

    The 200,000 msg/s target of (e) was set on a machine several times faster than some
    this bench runs on; the relay, measured in the same run, says how fast this one is.
    """
    from bench import e2e

    return float(e2e.throughput_run("tuned", messages, data_dir, 600.0)["msg_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every message count")
    parser.add_argument(
        "--cases", default="abcde", help="which cases to run, e.g. 'ae' (default: all of abcde)"
    )
    parser.add_argument(
        "--relay-messages",
        type=int,
        default=200_000,
        help="messages for the tuned relay that (e) is compared with (0: skip it)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    from engine.broker.embedded import EmbeddedBroker

    def n(count: int) -> int:
        return max(10, int(count * args.scale))

    data_dir = tempfile.mkdtemp(prefix="magnetar-bench-")
    broker = EmbeddedBroker(os.path.join(data_dir, "broker")).start()
    http_url, server = _server()
    ints = [str(i).encode() for i in range(n(1_000_000))]
    floats = [struct.pack("<d", float(i)) for i in range(n(500_000))]
    f64 = "engine.function.serdes.Float64SerDe"
    cases = [
        (
            "a",
            "async sleep 5 ms, 500 in flight",
            {"className": "AsyncSleep", "maxPendingAsyncRequests": 500},
            n(50_000),
            "serial sleep 5 ms",
            {"className": "SerialSleep"},
            n(400),
            100.0,
        ),
        (
            "b",
            "aiohttp GET (5 ms server), async",
            {"className": "AsyncHttp", "maxPendingAsyncRequests": 500, "userConfig": {"url": http_url}},
            n(20_000),
            "urllib GET, serial",
            {"className": "SerialHttp", "userConfig": {"url": http_url}},
            n(300),
            100.0,
        ),
        (
            "c",
            "time.sleep 5 ms, concurrency 64",
            {"className": "SerialSleep", "concurrency": 64},
            n(20_000),
            "time.sleep 5 ms, concurrency 1",
            {"className": "SerialSleep"},
            n(400),
            30.0,
        ),
        (
            "d",
            "process_batch numpy sum",
            {"className": "BatchSum", "customSerdeInputs": {"__topic__": f64}},
            len(floats),
            "sum per message",
            {"className": "MessageSum", "customSerdeInputs": {"__topic__": f64}},
            len(floats),
            None,
        ),
    ]
    rows = []
    for key, name, cfg, count, base_name, base_cfg, base_count, target in cases:
        if key not in args.cases:
            continue
        payloads = floats if key == "d" else [b"x"] * max(count, base_count)
        rate, cpu_us = run_case(broker.url, data_dir, cfg, payloads[:count])
        base, _ = run_case(broker.url, data_dir, base_cfg, payloads[:base_count])
        rows.append(
            {
                "case": key,
                "contender": name,
                "msg_per_s": rate,
                "cpu_us_per_msg": cpu_us,
                "baseline": base_name,
                "baseline_msg_per_s": base,
                "ratio": rate / base,
                "target": target,
            }
        )
        print(
            f"{key}: {name} {rate:,.0f} msg/s ({cpu_us:.1f} µs CPU/msg) vs {base_name} {base:,.0f} msg/s"
            f" = {rate / base:,.1f}x",
            flush=True,
        )
        if key == "b":
            alone, alone_cpu = aiohttp_alone(http_url, count, 500)
            rows[-1].update(aiohttp_alone_per_s=alone, aiohttp_alone_cpu_us=alone_cpu)
            print(
                f"b: aiohttp alone, 500 in flight: {alone:,.0f} GET/s ({alone_cpu:.1f} µs CPU/GET);"
                f" the function reaches {rate / alone:.0%} of it",
                flush=True,
            )
    window = {
        "className": "bench.concurrency_functions.window_sum",
        "windowConfig": {"windowLengthCount": 1000},
    }
    if "e" in args.cases:
        rate, cpu_us = run_case(broker.url, data_dir, window, ints)
        row: dict[str, Any] = {
            "case": "e",
            "contender": "count window of 1,000, summing",
            "msg_per_s": rate,
            "cpu_us_per_msg": cpu_us,
            "target": 200_000,
        }
        print(
            f"e: count window of 1,000 summing: {rate:,.0f} input msg/s ({cpu_us:.1f} µs CPU/msg)", flush=True
        )
        if args.relay_messages:
            relay = tuned_relay(args.relay_messages, data_dir)
            row.update(baseline="tuned relay (bench/e2e.py)", baseline_msg_per_s=relay, ratio=rate / relay)
            print(
                f"e: the tuned relay of bench/e2e.py: {relay:,.0f} msg/s; the window is {rate / relay:.2f}x"
            )
        rows.append(row)
    broker.stop()
    server.terminate()
    out = os.path.join(HERE, "results", f"concurrency-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as fh:
        json.dump({"scale": args.scale, "rows": rows}, fh, indent=2)
    print("\n| case | contender | msg/s | baseline | msg/s | ratio | target |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['contender']} | {r['msg_per_s']:,.0f} | {r.get('baseline', '')} | "
            f"{r.get('baseline_msg_per_s', 0):,.0f} | {r.get('ratio', 0):,.1f}x | {r['target']} |"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
