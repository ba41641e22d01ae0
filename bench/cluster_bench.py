"""Cluster benchmarks: metadata start-up with a long history, and scheduling at scale.

* Start-up: 10,000 functions with 100,000 historical updates (10 versions each) on the
  metadata topic of an embedded pulsar-lite broker. Baseline: a worker reading the whole
  log; Magnetar: a worker reading the newest snapshot and only the records after it.
* Scheduling: placing 10,000 instances (1,000 functions x 10) on 50 workers with the
  default least-loaded scheduler, and a full rebalance after 10 more workers join.

Usage: ``python bench/cluster_bench.py [--functions 10000] [--versions 10]``; writes
``bench/results/cluster-<time>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from engine.broker import EmbeddedBroker, make_client  # noqa: E402
from engine.broker.client import BrokerOptions  # noqa: E402
from engine.cluster.leader import AssignmentPlanner  # noqa: E402
from engine.cluster.metadata import MetadataService  # noqa: E402
from engine.cluster.topics import ClusterTopics  # noqa: E402
from engine.proto import Function_pb2 as pb  # noqa: E402


def metadata(i: int, version: int) -> pb.FunctionMetaData:
    d = pb.FunctionDetails(tenant="bench", namespace="ns", name=f"f{i}", className="m.F", parallelism=1)
    d.source.inputSpecs[f"persistent://bench/ns/in{i}"].serdeClassName = ""
    d.sink.topic = f"persistent://bench/ns/out{i}"
    d.userConfig = json.dumps({"v": version})
    return pb.FunctionMetaData(functionDetails=d, version=version)


def fill(client: Any, topics: ClusterTopics, functions: int, versions: int) -> None:
    producer = client.create_producer(
        topics.metadata,
        batching_enabled=True,
        batching_max_publish_delay_ms=5,
        block_if_queue_full=True,
        max_pending_messages=20000,
    )
    for version in range(versions):
        for i in range(functions):
            producer.send_async(
                metadata(i, version).SerializeToString(),
                None,
                partition_key=f"bench/ns/f{i}",
                properties={"version": str(version), "epoch": "1"},
            )
    producer.flush()
    producer.close()


def timed_load(client: Any, topics: ClusterTopics) -> MetadataService:
    svc = MetadataService(client, topics, f"bench-{uuid.uuid4().hex[:6]}")
    svc.load()
    return svc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--functions", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, Any] = {"functions": args.functions, "updates": args.functions * args.versions}

    data = tempfile.mkdtemp(prefix="magnetar-cluster-bench-")
    broker = EmbeddedBroker(os.path.join(data, "broker")).start()
    client = make_client(BrokerOptions(url=broker.url))
    topics = ClusterTopics(f"bench/meta{uuid.uuid4().hex[:6]}")
    try:
        t0 = time.perf_counter()
        fill(client, topics, args.functions, args.versions)
        results["fill_seconds"] = time.perf_counter() - t0
        full = timed_load(client, topics)
        assert len(full.registry) == args.functions
        results["full_log_load_seconds"] = full.startup_seconds
        results["full_log_records"] = full.startup_records
        asyncio.run(full.write_snapshot(epoch=1))
        # A little history after the snapshot, as in a running cluster.
        fill(client, topics, 100, 1)
        snap = timed_load(client, topics)
        assert len(snap.registry) == args.functions
        results["snapshot_load_seconds"] = snap.startup_seconds
        results["snapshot_tail_records"] = snap.startup_records
    finally:
        client.close()
        broker.stop()

    planner = AssignmentPlanner()
    fns = {
        f"t/n/f{i}": pb.FunctionMetaData(
            functionDetails=pb.FunctionDetails(tenant="t", namespace="n", name=f"f{i}", parallelism=10)
        )
        for i in range(1000)
    }
    workers = [f"w{i}" for i in range(50)]
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        plan = planner.plan(fns, {}, workers)
        best = min(best, time.perf_counter() - t0)
    results["schedule_10k_on_50_seconds"] = best
    current = {k: a for k, a in plan.writes.items() if a is not None}
    more = workers + [f"x{i}" for i in range(10)]
    t0 = time.perf_counter()
    moved = planner.plan(fns, current, more, rebalance=True)
    results["rebalance_10k_onto_60_seconds"] = time.perf_counter() - t0
    results["rebalance_moved"] = moved.moved

    print("| measurement | value |\n|---|---|")
    for key, value in results.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"cluster-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
