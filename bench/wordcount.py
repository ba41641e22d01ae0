"""Word count with state: counters committed once per batch vs once per message.

One embedded pulsar-lite broker; an input topic pre-filled with N lines of 10 words
drawn from 1,000 distinct words. Each contender runs in its own process on a fresh
subscription and its own SQLite state file, and counts every word of the backlog:

* ``native`` / ``pure``: ``context.incr_counter`` per word, accumulated by the hot path's
  counters and committed once per batch (compiled or pure-Python twin), ATLEAST_ONCE;
* ``native-eo``: the same with EFFECTIVELY_ONCE (input progress committed with the state);
* ``per-message``: the baseline, the compiled twin with a function that writes each
  message's counts to the same store in its own transaction.

Throughput is words divided by the wall time from the instance's start (subscribed) until
every line is processed;
afterwards the stored counters are checked against the text (a contender with a wrong
count fails the run). Usage: ``python bench/wordcount.py [--lines 50000] [--rounds 2]``;
writes ``bench/results/wordcount-<time>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from typing import Any

import pulsar

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORDS_PER_LINE = 10
MODES = ("native", "pure", "native-eo", "per-message")


def lines(n: int) -> list[str]:
    rng = random.Random(42)
    vocabulary = [f"word{i}" for i in range(1000)]
    return [" ".join(rng.choice(vocabulary) for _ in range(WORDS_PER_LINE)) for _ in range(n)]


def child(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, ROOT)
    from bench import wordcount_functions
    from engine.broker.client import BrokerOptions
    from engine.config import parse_function_config, resolve
    from engine.runtime.localrun import LocalRunner, LocalRunOptions
    from engine.state import open_state_store

    state_url = f"sqlite:///{args.data_dir}/state-{uuid.uuid4().hex[:6]}.db"
    per_message = args.mode == "per-message"
    spec = resolve(
        parse_function_config(
            {
                "className": "bench.wordcount_functions."
                + ("PerMessageWordCount" if per_message else "WordCount"),
                "name": "wordcount",
                "inputs": [args.input],
                "subName": f"bench-{uuid.uuid4().hex[:6]}",
                "subscriptionPosition": "Earliest",
                "processingGuarantees": "EFFECTIVELY_ONCE" if args.mode == "native-eo" else "ATLEAST_ONCE",
            }
        )
    )
    runner = LocalRunner(
        spec,
        LocalRunOptions(
            broker=BrokerOptions(url=args.url),
            data_dir=args.data_dir,
            hotpath="pure" if args.mode == "pure" else "native",
            state_storage_url=state_url,
        ),
    )
    runner.prepare()
    if per_message:
        wordcount_functions.STORE = open_state_store(state_url)
    runner.start()
    t0 = time.perf_counter()
    print("ready", flush=True)
    inst = runner.instances[0]
    while inst.stats.processed_ok < args.count:
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    runner.stop()
    store = open_state_store(state_url)
    counts = {w: store.get_counter("public/default/wordcount", w) or 0 for w in json.loads(args.words)}
    store.close()
    return {"lines": args.count, "seconds": elapsed, "counts": counts, "hotpath": runner.hot.name}


def run_mode(mode: str, url: str, inp: str, count: int, data_dir: str, words: list[str]) -> dict[str, Any]:
    cmd = [
        sys.executable, os.path.abspath(__file__), "child", "--mode", mode, "--url", url,
        "--input", inp, "--count", str(count), "--data-dir", data_dir, "--words", json.dumps(words),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    out, _ = proc.communicate(timeout=900)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main_run(args: argparse.Namespace) -> None:
    sys.path.insert(0, ROOT)
    from engine.broker import EmbeddedBroker

    data_dir = tempfile.mkdtemp(prefix="magnetar-wc-")
    broker = EmbeddedBroker(os.path.join(data_dir, "broker")).start()
    client = pulsar.Client(broker.url, logger=pulsar.FileLogger(pulsar.LoggerLevel.Warn, "/dev/stderr"))
    text = lines(args.lines)
    want = Counter(w for line in text for w in line.split())
    sample = sorted(want)[:50]
    results: dict[str, Any] = {"lines": args.lines, "words": sum(want.values()), "runs": {}}
    try:
        inp = f"wc-in-{uuid.uuid4().hex[:6]}"
        producer = client.create_producer(inp, batching_max_publish_delay_ms=5, block_if_queue_full=True)
        for line in text:
            producer.send_async(line.encode(), None)
        producer.flush()
        producer.close()
        for rnd in range(args.rounds):
            for mode in MODES:
                r = run_mode(mode, broker.url, inp, args.lines, data_dir, sample)
                wrong = {w: (r["counts"][w], want[w]) for w in sample if r["counts"][w] != want[w]}
                if wrong:
                    raise SystemExit(f"{mode}: wrong counts {wrong}")
                r["words_per_s"] = results["words"] / r["seconds"]
                del r["counts"]
                print(f"round {rnd + 1} {mode:>12}: {r['words_per_s']:>10,.0f} words/s", flush=True)
                results["runs"].setdefault(mode, []).append(r)
    finally:
        client.close()
        broker.stop()
    best = {m: max(runs, key=lambda r: r["words_per_s"]) for m, runs in results["runs"].items()}
    results["best"] = best
    base = best["per-message"]["words_per_s"]
    print("\n| contender | words/s (best of rounds) | vs per-message writes |")
    print("|---|---|---|")
    for mode in MODES:
        print(f"| {mode} | {best[mode]['words_per_s']:,.0f} | {best[mode]['words_per_s'] / base:.1f}x |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"wordcount-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--mode", choices=MODES, required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--input", required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--data-dir", required=True)
    c.add_argument("--words", required=True)
    parser.add_argument("--lines", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.cmd == "child":
        print(json.dumps(child(args)), flush=True)
    else:
        main_run(args)


if __name__ == "__main__":
    main()
