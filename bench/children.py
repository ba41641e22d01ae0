"""Memory and start latency of process-runtime children: forked from a fork server vs spawned.

For each mode it starts instances of ``engine.examples.exclamation`` one after the
other, as a worker does when its assignments arrive, up to ``--max``:

* **latency**: from the start of :meth:`ProcessInstance.start` (what the runtime calls
  on an assignment) to the child's ready line (it consumes, produces and serves
  InstanceControl);
* **PSS**: the proportional set size of every process the mode runs (the children, and
  the fork server), summed from ``/proc/PID/smaps_rollup``: pages shared among them are
  counted once in the sum, so the difference from one more child is what that child
  adds to the machine.

Then ``--max`` instances are started at once (a function created with that
parallelism) and the time until all run is reported.

Children connect as a worker's do: on pulsar-lite each takes its instance's fixed
consumer-id offset (:func:`engine.broker.client.child_broker_options`);
``--consumer-ids spread`` measures the former random spread below ``--spread``.

Run: ``python bench/children.py --max 8`` (prints a table and, with ``--out``, writes JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from engine.broker import EmbeddedBroker  # noqa: E402
from engine.broker.client import BrokerOptions, child_broker_options  # noqa: E402
from engine.config import parse_function_config, resolve  # noqa: E402
from engine.config.details import to_details  # noqa: E402
from engine.instance.instance import InstanceOptions  # noqa: E402
from engine.runtime.child import Launch  # noqa: E402
from engine.runtime.forkserver import ForkServer  # noqa: E402
from engine.runtime.process import ProcessInstance  # noqa: E402

#: The worker's default ``--consumer-id-spread`` (``--spread`` changes it).
SPREAD = 4096


def pss_kb(pid: int) -> int:
    """``Pss`` of ``pid`` in kB, from ``/proc/PID/smaps_rollup`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


class Runner:
    """Starts instances of one function in one mode (``fork`` or ``spawn``)."""

    spread = SPREAD
    #: ``offset``: each child takes its instance's fixed consumer-id offset, as a worker's
    #: children do; ``spread``: each takes a random spread below ``spread`` (the former way).
    ids = "offset"

    def __init__(self, broker: EmbeddedBroker, work: str, mode: str, tag: str) -> None:
        self.broker = broker
        self.work = work
        self.forks = (
            ForkServer(os.path.join(work, "instances", "fork-server.log")) if mode == "fork" else None
        )
        spec = resolve(
            parse_function_config(
                {
                    "name": f"children-{tag}",
                    "className": "engine.examples.exclamation.ExclamationFunction",
                    "inputs": [f"children-{tag}-in"],
                    "output": f"children-{tag}-out",
                    "parallelism": 64,
                }
            )
        )
        self.spec = spec
        self.details = to_details(spec).SerializeToString()
        self.instances: list[ProcessInstance] = []
        self._next = 0
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start the fork server and wait for it (a worker starts it with its runtime)."""
        if self.forks is not None:
            self.forks.start()
            assert self.forks._hello.wait(60), "fork server did not greet"
            # A worker's fork server has long been idle when assignments come: measure that state.
            assert self.forks.preloaded.wait(60), "fork server did not finish its idle-time imports"

    def _new(self) -> ProcessInstance:
        with self._lock:
            iid = self._next
            self._next += 1
        launch = Launch(
            fqfn=self.spec.fqfn,
            instance_id=iid,
            details=self.details,
            package_path=None,
            # As a worker launches its children (pulsar-lite's consumer-id workaround included).
            broker=dataclasses.asdict(self._broker_options(iid)),
            state_storage_url=f"sqlite:///{os.path.join(self.work, 'state.db')}",
            hotpath=None,
            options=dataclasses.asdict(InstanceOptions()),
            data_dir=self.work,
            worker_id="bench",
        )
        return ProcessInstance(self.spec, launch, os.path.join(self.work, "instances"), 5.0, self.forks)

    def _broker_options(self, instance_id: int) -> BrokerOptions:
        worker = BrokerOptions(url=self.broker.url, kind="pulsar-lite", consumer_id_spread=self.spread)
        return child_broker_options(worker, instance_id) if self.ids == "offset" else worker

    def start_one(self) -> float:
        """Start one more instance; seconds from its start to its ready line."""
        inst = self._new()
        t0 = time.perf_counter()
        inst.start()
        took = time.perf_counter() - t0
        with self._lock:
            self.instances.append(inst)
        return took

    def start_many(self, n: int) -> tuple[float, list[float]]:
        """Start ``n`` at once (a thread each, as the runtime does); wall time and each latency."""
        took: list[float] = []
        t0 = time.perf_counter()
        threads = [threading.Thread(target=lambda: took.append(self.start_one())) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0, took

    def pids(self) -> list[int]:
        pids = [i.pid for i in self.instances if i.pid is not None]
        if self.forks is not None and self.forks.pid is not None:
            pids.append(self.forks.pid)
        return pids

    def pss_total_kb(self) -> int:
        return sum(pss_kb(p) for p in self.pids())

    def close(self) -> None:
        for inst in self.instances:
            inst.stop()
        self.instances.clear()
        if self.forks is not None:
            self.forks.close()


def run_mode(broker: EmbeddedBroker, work: str, mode: str, most: int) -> dict[str, Any]:
    runner = Runner(broker, os.path.join(work, mode), mode, mode)
    series: list[dict[str, Any]] = []
    try:
        runner.warm()
        base = runner.pss_total_kb()  # the fork server alone (0 when spawning)
        for n in range(1, most + 1):
            latency = runner.start_one()
            total = runner.pss_total_kb()
            child = runner.instances[-1].pid
            assert child is not None
            series.append(
                {
                    "instances": n,
                    "latency_ms": round(latency * 1000, 1),
                    "pss_total_mb": round(total / 1024, 1),
                    "pss_added_mb": round(
                        (total - (series[-1]["pss_total_kb"] if series else base)) / 1024, 1
                    ),
                    "pss_total_kb": total,
                    "child_rss_mb": round(rss_kb(child) / 1024, 1),
                    "child_pss_mb": round(pss_kb(child) / 1024, 1),
                }
            )
    finally:
        runner.close()
    burst_runner = Runner(broker, os.path.join(work, mode + "-burst"), mode, mode + "b")
    try:
        burst_runner.warm()
        wall, each = burst_runner.start_many(most)
    finally:
        burst_runner.close()
    return {
        "mode": mode,
        "server_pss_mb": round(base / 1024, 1),
        "series": series,
        "burst": {
            "instances": most,
            "all_running_ms": round(wall * 1000),
            "max_latency_ms": round(max(each) * 1000),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=8, help="instances per mode (1..max)")
    parser.add_argument("--modes", default="fork,spawn", help="comma-separated: fork, spawn")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--spread", type=int, default=SPREAD, help="the worker's consumer-id spread")
    parser.add_argument(
        "--consumer-ids",
        choices=["offset", "spread"],
        default="offset",
        help="children take their instance's fixed offset (as a worker's do) or a random spread",
    )
    args = parser.parse_args()
    Runner.spread = args.spread
    Runner.ids = args.consumer_ids
    work = tempfile.mkdtemp(prefix="magnetar-children-")
    os.chmod(work, 0o700)
    broker = EmbeddedBroker(os.path.join(work, "broker")).start()
    results = []
    try:
        for mode in args.modes.split(","):
            result = run_mode(broker, work, mode.strip(), args.max)
            results.append(result)
            print(f"\n{mode}: fork server {result['server_pss_mb']} MB PSS")
            print(
                f"{'n':>3} {'latency ms':>11} {'PSS total MB':>13} {'added MB':>9} "
                f"{'child RSS':>10} {'child PSS':>10}"
            )
            for row in result["series"]:
                print(
                    f"{row['instances']:>3} {row['latency_ms']:>11} {row['pss_total_mb']:>13} "
                    f"{row['pss_added_mb']:>9} {row['child_rss_mb']:>10} {row['child_pss_mb']:>10}"
                )
            burst = result["burst"]
            print(
                f"{burst['instances']} at once: all running in {burst['all_running_ms']} ms "
                f"(slowest start {burst['max_latency_ms']} ms)"
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
