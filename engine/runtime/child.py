"""Entry point of a process-runtime instance: ``python -m engine.runtime.child LAUNCH_FILE``.

The worker writes a launch file (JSON: the function's details, its package, the broker,
state store and instance options) and starts this module. The child builds the
instance, serves InstanceControl on a loopback port and reports to the worker with
JSON lines on its stdout, which it keeps for that alone (anything else printed goes
to stderr, the instance's log file):

* ``{"event": "ready", "port": P}`` once the instance runs and the service answers;
* ``{"event": "error", "error": "..."}`` when the instance cannot start (exit code 2);
* ``{"event": "failed", "error": "..."}`` when the running instance dies (exit code 3).

SIGTERM stops the instance in order (inputs settled, outputs flushed) and exits 0.
If the worker disappears, the child notices within a fraction of a second and stops
the same way.

In a container (the StatefulSets of ``magnetar mesh manifests``) there is no worker:
``--control-host``/``--control-port`` fix where InstanceControl listens,
``--metrics-port`` serves ``/metrics`` (Apache's names), and
``--instance-id-from-hostname`` takes the instance id from the pod's ordinal
(``name-3`` is instance 3).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Launch", "main"]

log = logging.getLogger("engine.runtime.child")

EXIT_START_FAILED = 2
EXIT_INSTANCE_FAILED = 3


@dataclass
class Launch:
    """Everything a child needs to run one instance (the launch file's content)."""

    fqfn: str
    instance_id: int
    details: bytes
    package_path: str | None
    broker: dict[str, Any]
    state_storage_url: str | None
    hotpath: str | None
    options: dict[str, Any] = field(default_factory=dict)
    secrets_provider: str | None = None
    secrets_provider_config: dict[str, Any] | None = None
    worker_id: str = ""
    data_dir: str = "."
    log_level: str = "WARNING"

    def dump(self, path: str) -> None:
        """Write the launch file."""
        data = {**self.__dict__, "details": base64.b64encode(self.details).decode()}
        # It may hold broker credentials: readable by this user only.
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
            json.dump(data, fh)

    @classmethod
    def load(cls, path: str) -> Launch:
        """Read a launch file."""
        with open(path) as fh:
            data = json.load(fh)
        data["details"] = base64.b64decode(data["details"])
        return cls(**data)


def _emit(channel: TextIO, **event: Any) -> None:
    channel.write(json.dumps(event) + "\n")
    channel.flush()


@dataclass(frozen=True)
class Serving:
    """Where the child serves InstanceControl and (optionally) Prometheus metrics."""

    control_host: str = "127.0.0.1"
    control_port: int = 0
    metrics_port: int | None = None
    cluster_name: str = "standalone"


def _run(launch: Launch, channel: TextIO, stop: threading.Event, serving: Serving | None = None) -> int:
    from engine.broker.client import BrokerOptions, make_client
    from engine.hotpath import load
    from engine.instance.options import InstanceOptions
    from engine.instance.secrets import make_secrets_provider
    from engine.proto import Function_pb2 as pb
    from engine.runtime.builder import build_instance
    from engine.runtime.control import serve_control
    from engine.state import open_state_store

    parent = os.getppid()
    client = store = inst = server = None
    try:
        details = pb.FunctionDetails.FromString(launch.details)
        broker = BrokerOptions(**launch.broker)
        client = make_client(broker, io_threads=1)
        store = open_state_store(launch.state_storage_url) if launch.state_storage_url else None
        inst = build_instance(
            details,
            launch.package_path,
            launch.instance_id,
            client,
            load(launch.hotpath),
            store,
            make_secrets_provider(launch.secrets_provider, launch.secrets_provider_config),
            # A call past timeoutMs ends this process, so the worker replaces it.
            InstanceOptions(**{**launch.options, "replace_process_on_timeout": True}),
            launch.data_dir,
            broker.capabilities,
        )
        inst.start()
        serving = serving or Serving()
        server, port = serve_control(inst, launch.worker_id, serving.control_host, serving.control_port)
        if serving.metrics_port is not None:
            from engine.runtime.metrics import serve_metrics

            serve_metrics(serving.metrics_port, lambda: [inst], serving.cluster_name, serving.control_host)
    except BaseException as exc:
        log.exception("instance %s:%s could not start", launch.fqfn, launch.instance_id)
        _emit(channel, event="error", error=f"{type(exc).__name__}: {exc}")
        if inst is not None:
            inst.stop()
        if client is not None:
            client.close()
        return EXIT_START_FAILED
    _emit(channel, event="ready", port=port, pid=os.getpid())
    code = 0
    while not stop.wait(0.2):
        if os.getppid() != parent:
            log.warning("worker %s is gone; stopping %s:%s", parent, launch.fqfn, launch.instance_id)
            break
        if not inst.is_alive():
            _emit(channel, event="failed", error=inst.failure_text or "the instance loop stopped")
            code = EXIT_INSTANCE_FAILED
            break
    inst.stop()
    server.stop(0.5)
    client.close()
    if store is not None:
        store.close()
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the instance described by the launch file; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m engine.runtime.child")
    parser.add_argument("launch_file")
    parser.add_argument("--fqfn", help="shown in process listings only")
    parser.add_argument("--instance-id", help="shown in process listings only")
    parser.add_argument("--control-host", default="127.0.0.1", help="where InstanceControl listens")
    parser.add_argument("--control-port", type=int, default=0, help="InstanceControl's port (0: any free)")
    parser.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    parser.add_argument("--cluster-name", default="standalone", help="the metrics' cluster label")
    parser.add_argument(
        "--instance-id-from-hostname",
        action="store_true",
        help="the instance id is the pod's ordinal (the hostname's last -N)",
    )
    args = parser.parse_args(argv)
    launch = Launch.load(args.launch_file)
    if args.instance_id_from_hostname:
        launch.instance_id = int(socket.gethostname().rsplit("-", 1)[-1])
    serving = Serving(args.control_host, args.control_port, args.metrics_port, args.cluster_name)
    # Keep fd 1 for the worker; everything else printed goes to the log (stderr).
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(
        level=launch.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{launch.fqfn}:{launch.instance_id}] %(name)s: %(message)s",
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops us in order
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return _run(launch, channel, stop, serving)


if __name__ == "__main__":
    sys.exit(main())
