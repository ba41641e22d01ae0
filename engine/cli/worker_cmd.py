"""``magnetar worker`` and ``magnetar standalone``: run a function worker process."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import uuid
from typing import Any

from engine.api import serve
from engine.cli.localrun_cmd import add_broker_flags, broker_options
from engine.cluster.foreign import ForeignWorkerError
from engine.worker import Worker, WorkerConfig

__all__ = ["add_worker_parsers"]


def _add_common(p: argparse.ArgumentParser, default_port: int) -> None:
    p.add_argument("--worker-id", help="unique id of this worker (default: a random one)")
    p.add_argument(
        "--data-dir", default="./magnetar-data", help="packages cache, state and embedded broker data"
    )
    p.add_argument("--host", default="127.0.0.1", help="address the REST API listens on")
    p.add_argument("--port", type=int, default=default_port, help=f"REST API port (default {default_port})")
    p.add_argument(
        "--functions-namespace", default="public/functions", help="namespace of the cluster topics"
    )
    p.add_argument(
        "--state-storage-url",
        help="sqlite:///path or postgresql://user@host/db (default: state.db in the data dir)",
    )
    p.add_argument("--hotpath", choices=["native", "pure"], help="hot-path twin (default: native if built)")
    p.add_argument("--secrets-provider-classname", help="cleartext (default), env, file, or a class path")
    p.add_argument(
        "--consumer-id-spread",
        type=int,
        default=4096,
        help="start consumer ids at a random offset below N, so workers sharing a pulsar-lite "
        "broker do not collide on a subscription (0 turns it off; not needed with Apache Pulsar)",
    )
    p.add_argument(
        "--runtime",
        choices=["thread", "process"],
        default="thread",
        help="run each instance on a thread of the worker (default) or in its own child process",
    )
    p.add_argument(
        "--cluster-name", default="standalone", help="the cluster label of the metrics (default standalone)"
    )
    p.add_argument("--heartbeat-interval", type=float, default=0.5, help="seconds between heartbeats")
    p.add_argument(
        "--election-timeout",
        type=float,
        default=2.0,
        help="seconds without fresh heartbeats before a leader steps down or a worker is dead",
    )


def add_worker_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``worker`` and ``standalone``."""
    w = sub.add_parser("worker", help="run a worker that joins a cluster through its broker")
    _add_common(w, 6750)
    add_broker_flags(w)
    w.set_defaults(handler=lambda a: _run(a, standalone=False))
    s = sub.add_parser("standalone", help="embedded broker + one worker + REST API on 127.0.0.1:6750")
    _add_common(s, 6750)
    s.set_defaults(handler=lambda a: _run(a, standalone=True), broker_url=None)


def _run(args: argparse.Namespace, standalone: bool) -> int:
    if not standalone and not args.broker_url:
        print(
            "magnetar: --broker-url is required for a worker (use `magnetar standalone` for one machine)",
            file=sys.stderr,
        )
        return 2
    config = WorkerConfig(
        worker_id=args.worker_id or f"worker-{uuid.uuid4().hex[:8]}",
        data_dir=args.data_dir,
        broker=None if standalone else broker_options(args),
        host=args.host,
        port=args.port,
        namespace=args.functions_namespace,
        state_storage_url=args.state_storage_url,
        hotpath=args.hotpath,
        secrets_provider=args.secrets_provider_classname,
        heartbeat_interval=args.heartbeat_interval,
        election_timeout=args.election_timeout,
        consumer_id_spread=args.consumer_id_spread,
        runtime=args.runtime,
        cluster_name=args.cluster_name,
    )
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        pass
    return int(runner(_serve(config)))


async def _serve(config: WorkerConfig) -> int:
    worker = Worker(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    http = await serve(worker)
    try:
        try:
            await worker.start()
        except ForeignWorkerError as exc:
            print(f"magnetar: {exc}", file=sys.stderr, flush=True)
            return 2
        print(
            f"magnetar: worker {config.worker_id} ready on {config.url} "
            f"(started in {worker.startup_ms:.0f} ms)",
            flush=True,
        )
        await stop.wait()
    finally:
        await worker.stop()
        await http.cleanup()
    return 0
