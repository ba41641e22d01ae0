"""``magnetar worker`` and ``magnetar standalone``: run a function worker process."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
import uuid
from typing import Any

from engine.api import security_of, serve
from engine.api.guard import listen_refusal
from engine.cli.auth_flags import add_auth_flags, auth_settings
from engine.cli.client_log import ClientLogSummary
from engine.cli.localrun_cmd import add_broker_flags, add_debug_flag, broker_options, check_start
from engine.cli.startup import StartupError, check_port_free, describe_start_failure
from engine.cluster.foreign import ForeignWorkerError
from engine.security.settings import (
    DEFAULT_MAX_INSTANCES_PER_TENANT,
    DEFAULT_MAX_PARALLELISM,
    SecuritySettings,
)
from engine.worker import Worker, WorkerConfig
from engine.worker.worker import CLIENT_LOG

__all__ = ["STANDALONE_BROKER_PORT", "add_worker_parsers"]

#: The port ``pulsar standalone`` listens on, which clients and READMEs assume.
STANDALONE_BROKER_PORT = 6650

log = logging.getLogger(__name__)


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
        default="process",
        help="run each instance in its own child process (default), or on a thread of the worker "
        "(thread: cheaper, but the instance shares the worker's fate: a crash or a leak in a "
        "function takes the worker down)",
    )
    add_auth_flags(p)
    add_debug_flag(p)
    p.add_argument(
        "--allow-unauthenticated-remote",
        action="store_true",
        help="listen on a non-loopback --host without authentication (anyone reaching it can run code)",
    )
    p.add_argument(
        "--allowed-hosts",
        default="",
        help="comma-separated names a request's Host may carry besides loopback ones "
        "(without authentication)",
    )
    p.add_argument(
        "--max-parallelism",
        type=_positive,
        default=DEFAULT_MAX_PARALLELISM,
        help=f"the largest parallelism of one function (default {DEFAULT_MAX_PARALLELISM})",
    )
    p.add_argument(
        "--max-instances-per-tenant",
        type=_positive,
        default=DEFAULT_MAX_INSTANCES_PER_TENANT,
        help="the most instances of all functions of one tenant "
        f"(default {DEFAULT_MAX_INSTANCES_PER_TENANT})",
    )
    p.add_argument(
        "--cluster-name", default="standalone", help="the cluster label of the metrics (default standalone)"
    )
    p.add_argument("--heartbeat-interval", type=float, default=0.5, help="seconds between heartbeats")
    p.add_argument(
        "--disk-headroom-mb",
        type=_headroom,
        default=None,
        help="MiB of the data dir's file system that package uploads and caching leave free for the "
        "broker (default: 5%% of the file system, at most 64; 0 turns the check off)",
    )
    p.add_argument(
        "--election-timeout",
        type=float,
        default=2.0,
        help="seconds without fresh heartbeats before a leader steps down or a worker is dead",
    )


def _headroom(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a number of MiB, 0 or more")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"got {text}; expected a number of MiB, 0 or more")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}; expected a positive integer")
    return value


def security_settings(args: argparse.Namespace) -> SecuritySettings:
    """The worker's security settings from its flags."""
    return SecuritySettings(
        allow_unauthenticated_remote=args.allow_unauthenticated_remote,
        allowed_hosts=tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip()),
        max_parallelism=args.max_parallelism,
        max_instances_per_tenant=args.max_instances_per_tenant,
    )


def add_worker_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``worker`` and ``standalone``."""
    w = sub.add_parser("worker", help="run a worker that joins a cluster through its broker")
    _add_common(w, 6750)
    add_broker_flags(w)
    w.set_defaults(handler=lambda a: _run(a, standalone=False))
    s = sub.add_parser(
        "standalone",
        help="embedded broker (pulsar://127.0.0.1:6650) + one worker + REST API on 127.0.0.1:6750",
    )
    _add_common(s, 6750)
    s.add_argument(
        "--broker-port",
        type=_tcp_port,
        help=f"port of the embedded broker (default {STANDALONE_BROKER_PORT} when free, else a free one)",
    )
    s.set_defaults(handler=lambda a: _run(a, standalone=True), broker_url=None)


def _tcp_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a TCP port, 1 to 65535")
    return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _standalone_broker_port(asked: int | None) -> int | None:
    """The embedded broker's port: the one asked for, else 6650 as ``pulsar standalone`` uses.

    When 6650 is taken (another broker is running), a free port is used and the printed
    broker URL says which.
    """
    if asked is not None:
        return asked
    if _port_is_free(STANDALONE_BROKER_PORT):
        return STANDALONE_BROKER_PORT
    print(
        f"magnetar: port {STANDALONE_BROKER_PORT} is in use; the embedded broker takes a free port",
        file=sys.stderr,
    )
    return None


def _run(args: argparse.Namespace, standalone: bool) -> int:
    if not standalone and not args.broker_url:
        print(
            "magnetar: --broker-url is required for a worker (use `magnetar standalone` for one machine)",
            file=sys.stderr,
        )
        return 2
    check_start(args, args.data_dir)
    check_port_free(args.host, args.port)
    security = auth_settings(args)
    broker = None if standalone else broker_options(args)
    if broker is not None and broker.auth_plugin is None and security.broker_client_authentication_plugin:
        # The worker's own credentials serve for the broker too, as in Apache's worker.
        broker = dataclasses.replace(
            broker,
            auth_plugin=security.broker_client_authentication_plugin,
            auth_params=security.broker_client_authentication_parameters,
        )
    config = WorkerConfig(
        worker_id=args.worker_id or f"worker-{uuid.uuid4().hex[:8]}",
        data_dir=args.data_dir,
        broker=broker,
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
        auth=security,
        security=dataclasses.replace(
            security_settings(args), authentication_enabled=security.authentication_enabled
        ),
        embedded_broker_port=_standalone_broker_port(args.broker_port) if standalone else None,
        cluster_name=args.cluster_name,
        disk_headroom_mb=args.disk_headroom_mb,
    )
    refusal = listen_refusal(config.host, config.security)
    if refusal is not None:
        print(f"magnetar: {refusal}", file=sys.stderr)
        return 2
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        pass
    return int(runner(_serve(config)))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("following the client log failed", exc_info=task.exception())


async def _serve(config: WorkerConfig) -> int:
    worker = Worker(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        http = await serve(worker)
    except OSError as exc:  # the port was taken after the check
        raise StartupError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
    security = security_of(http)
    try:
        try:
            await worker.start()
        except ForeignWorkerError as exc:
            print(f"magnetar: {exc}", file=sys.stderr, flush=True)
            return 2
        except Exception as exc:
            url = config.broker.url if config.broker is not None else None
            raise StartupError(describe_start_failure(exc, url)) from exc
        assert worker.client is not None
        await security.start(worker.client, config.namespace)
        print(
            f"magnetar: worker {config.worker_id} ready on {config.url} "
            f"(started in {worker.startup_ms:.0f} ms)",
            flush=True,
        )
        summary = ClientLogSummary(os.path.join(os.path.abspath(config.data_dir), CLIENT_LOG))
        follow = asyncio.create_task(summary.run())
        follow.add_done_callback(_log_failure)
        if worker.broker is not None:
            print(
                f"  admin URL:  {config.url}  (magnetar functions ... --admin-url, /dashboard)\n"
                f"  broker URL: {worker.broker.url}  (clients; more workers: magnetar worker --broker-url)",
                flush=True,
            )
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(worker.fatal.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, failed):
            task.cancel()
        follow.cancel()
    finally:
        await security.stop()
        await worker.stop()
        await http.cleanup()
    if worker.fatal.is_set():
        print(f"magnetar: worker {config.worker_id} stopped: {worker.fatal_reason}", file=sys.stderr)
        return 1
    return 0
