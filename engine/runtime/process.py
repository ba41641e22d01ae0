"""The process runtime's handle on one instance: a child process controlled over gRPC.

:class:`ProcessInstance` starts ``python -m engine.runtime.child`` with a launch file,
waits for its ready line, then answers status and metrics by calling the child's
InstanceControl service. It offers what the runtime manager and the metrics collector
use of a thread-runtime instance (``start``, ``stop``, ``is_alive``, ``failure_text``,
``status``, ``stats.snapshot``), so both runtimes are managed alike.

A dead child is noticed without a network call (the process has exited), so the
status of a dead instance answers at once; a child that does not answer within
:attr:`ProcessInstance.CALL_TIMEOUT` is reported as not answering.

The worker's event loop uses the ``async`` calls (:meth:`ProcessInstance.status_async`,
:meth:`ProcessInstance.snapshot_async`) on a ``grpc.aio`` channel, so a hung child
costs the loop nothing while the call's deadline runs.
The blocking forms remain for threads and for tools that have no loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from google.protobuf import empty_pb2

import engine
from engine.config.validation import FunctionSpec
from engine.instance.crashes import EXIT_CALL_TIMED_OUT, TIMED_OUT_EXIT, ledger_path, record_exit
from engine.instance.status import snapshot_from, status_dict
from engine.proto import InstanceCommunication_pb2 as ic
from engine.proto import InstanceCommunication_pb2_grpc as ic_grpc
from engine.runtime.child import Launch
from engine.runtime.forkserver import ForkedProcess, ForkServer, ForkServerError
from engine.runtime.limits import RamWatch, apply_cpu_limit, ram_text, remove_cpu_limit

if TYPE_CHECKING:  # engine.io imports the connectors (aiohttp): 200 ms a localrun need not spend
    from engine.io.spec import SourceSpec

__all__ = ["InstanceStartError", "ProcessInstance"]

log = logging.getLogger(__name__)


class InstanceStartError(RuntimeError):
    """The child process could not start the instance; the message says why.

    ``died`` is True when the process ended (an exit code or a signal) without reporting
    an error: a crash, which an input it was already running may have caused, so a
    runtime restarts it as it would a death noticed later rather than give up.
    """

    def __init__(self, message: str, died: bool = False) -> None:
        super().__init__(message)
        self.died = died


class _RemoteStats:
    """``stats.snapshot()`` of a child, as the metrics collector reads it."""

    def __init__(self, owner: ProcessInstance) -> None:
        self._owner = owner

    def snapshot(self) -> dict[str, Any]:
        return snapshot_from(self._owner.metrics_proto(), self._owner.last_status)


class ProcessInstance:
    """Instance ``launch.instance_id`` of ``spec``, running in its own child process.

    Parameters
    ----------
    spec
        The validated function (names and labels; the child loads the code itself).
    launch
        What the child runs.
    run_dir
        Where the launch file and the instance's log file are written.
    stop_grace_s
        How long a stop waits for the child to settle its inputs before killing it.
    forks
        The worker's fork server: the child is forked from it while it is usable, and
        spawned afresh otherwise (or when it refuses).
    """

    CALL_TIMEOUT = 0.5

    def __init__(
        self,
        spec: FunctionSpec | SourceSpec,
        launch: Launch,
        run_dir: str,
        stop_grace_s: float = 10.0,
        forks: ForkServer | None = None,
    ) -> None:
        self.spec = spec
        self.launch = launch
        self.instance_id = launch.instance_id
        self.run_dir = run_dir
        self.stop_grace_s = stop_grace_s
        base = f"{spec.tenant}.{spec.namespace}.{spec.name}-{launch.instance_id}"
        self.log_path = os.path.join(run_dir, base + ".log")
        self._launch_path = os.path.join(run_dir, base + ".launch.json")
        self.forks = forks
        self.proc: subprocess.Popen[bytes] | ForkedProcess | None = None
        self.port: int | None = None
        self.stats = _RemoteStats(self)
        self.last_status: ic.FunctionStatus | None = None
        self._last_metrics = ic.MetricsData()
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._failure = ""
        #: Whether ``_failure`` is the child's own report (an error it raised), not how it was ended.
        self._reported_failure = False
        self._channel: grpc.Channel | None = None
        self._stub: ic_grpc.InstanceControlStub | None = None
        self._aio_channel: grpc.aio.Channel | None = None
        self._aio_stub: ic_grpc.InstanceControlStub | None = None
        self._cgroup = f"{launch.worker_id or os.getpid()}.{base}"
        self._ram_watch: RamWatch | None = None
        self._ram_limit = 0
        #: What became of ``resources.cpu`` (applied, or why not).
        self.cpu_limit = ""

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self.proc.pid if self.proc is not None else None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, wait: float = 60.0) -> None:
        """Start the child and wait until it serves; raises :class:`InstanceStartError`."""
        os.makedirs(self.run_dir, exist_ok=True)
        self.launch.dump(self._launch_path)
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(engine.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        cmd = [
            sys.executable,
            "-m",
            "engine.runtime.child",
            self._launch_path,
            "--fqfn",
            self.spec.fqfn,
            "--instance-id",
            str(self.instance_id),
        ]
        with open(self.log_path, "ab") as log_file:
            self.proc = self._forked(cmd, env, log_file.fileno())
            if self.proc is None:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, env=env
                )
        threading.Thread(target=self._read_events, name=f"events-{self.proc.pid}", daemon=True).start()
        self._apply_limits(self.proc.pid)
        try:
            event = self._events.get(timeout=wait)
        except queue.Empty:
            self._kill()
            raise InstanceStartError(
                f"instance {self.spec.fqfn}:{self.instance_id} did not start within {wait}s"
            )
        if event.get("event") != "ready":
            self._reap(5.0)
            died = not self._reported_failure and bool(self.failure_text)
            if died:
                # It died (or was killed, e.g. past its ram) before it was ready: an input of
                # its backlog, or one read back after the last death, may end it at once. Its
                # ledger learns how, as for a death noticed later.
                record_exit(self._ledger_path(), self.failure_text.removeprefix("instance process "))
            raise InstanceStartError(
                self.failure_text or "the instance process exited before it was ready", died=died
            )
        self.port = int(event["port"])
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self._stub = ic_grpc.InstanceControlStub(self._channel)

    def _ledger_path(self) -> str:
        """The crash ledger the child keeps (beside its log unless its options name one)."""
        named = self.launch.options.get("crash_ledger")
        if named:
            return str(named)
        spec = self.spec
        return ledger_path(self.run_dir, spec.tenant, spec.namespace, spec.name, self.instance_id)

    def _forked(self, cmd: list[str], env: dict[str, str], log_fd: int) -> ForkedProcess | None:
        """The child forked by the fork server, or ``None`` to spawn it instead."""
        if self.forks is None or not self.forks.usable:
            return None
        try:
            return self.forks.launch(cmd, env, log_fd)
        except ForkServerError as exc:
            log.warning("%s:%s: %s; spawning the child instead", self.spec.fqfn, self.instance_id, exc)
            return None

    def _apply_limits(self, pid: int) -> None:
        """Watch ``resources.ram`` and apply ``resources.cpu`` (see :mod:`engine.runtime.limits`)."""
        resources = getattr(self.spec, "resources", None)  # a source's spec asks for none
        if resources is None:
            return
        self._ram_limit = resources.ram or 0
        if resources.ram:
            self._ram_watch = RamWatch(pid, resources.ram, self._ram_exceeded).start()
        if resources.cpu:
            self.cpu_limit = apply_cpu_limit(pid, resources.cpu, self._cgroup)
            log.info("%s:%s: %s", self.spec.fqfn, self.instance_id, self.cpu_limit)

    def _ram_exceeded(self, rss: int) -> None:
        """The child holds more than ``resources.ram``: kill it, naming why (on the watch's thread)."""
        limit = ram_text(self._ram_limit)
        self._failure = f"instance process exceeded ram {limit}"
        log.warning(
            "%s:%s exceeded ram %s (resident %s); killing it",
            self.spec.fqfn,
            self.instance_id,
            limit,
            ram_text(rss),
        )
        self._kill()

    def _read_events(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                log.debug("instance %s:%s wrote %r", self.spec.fqfn, self.instance_id, raw[:200])
                continue
            if event.get("event") in ("error", "failed"):
                self._failure = str(event.get("error", ""))
                self._reported_failure = True
            self._events.put(event)
        self._events.put({"event": "exit"})

    def stop(self) -> None:
        """Stop the child in order (SIGTERM), killing it if it does not exit in time."""
        proc = self.proc
        if self._ram_watch is not None:
            self._ram_watch.stop()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            self._reap(self.stop_grace_s + 5.0)
        if proc is not None and self.cpu_limit.startswith("resources.cpu applied"):
            remove_cpu_limit(self._cgroup)
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _reap(self, timeout: float) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "instance %s:%s did not exit in %.0fs; killing it", self.spec.fqfn, self.instance_id, timeout
            )
            self._kill()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def is_alive(self) -> bool:
        """True while the child runs and its instance has not failed."""
        return self.proc is not None and self.proc.poll() is None and not self._failure

    @property
    def failure_text(self) -> str:
        """Why the instance stopped: its own error, or how its process ended."""
        if self._failure:
            return self._failure
        if isinstance(self.proc, ForkedProcess) and self.proc.lost:
            return "instance process ended with its fork server"
        code = self.proc.poll() if self.proc is not None else None
        if code is None or code == 0:
            return ""
        if code < 0:
            return f"instance process killed by {signal.Signals(-code).name}"
        if code == EXIT_CALL_TIMED_OUT:
            timeout_ms = getattr(self.spec, "timeout_ms", None)
            return "instance process " + TIMED_OUT_EXIT.format(timeout_ms=timeout_ms)
        return f"instance process exited with code {code}"

    # -- control calls ---------------------------------------------------------------------
    def _call(self, method: str) -> Any:
        """Call ``method`` on the child; ``None`` if it is gone or does not answer in time."""
        if self._stub is None or not self.is_alive():
            return None
        try:
            return getattr(self._stub, method)(empty_pb2.Empty(), timeout=self.CALL_TIMEOUT)
        except grpc.RpcError as exc:
            log.debug("%s on %s:%s failed: %s", method, self.spec.fqfn, self.instance_id, exc)
            return None

    async def _call_async(self, method: str) -> tuple[Any, grpc.StatusCode | None]:
        """Call ``method`` on the loop's own gRPC channel; ``(answer or None, failure code)``.

        A ``grpc.aio`` channel, made on first use by the loop that calls: the blocking
        channel would start a polling thread per idle-to-busy call, and starting a thread
        waits on the loop until the thread runs.
        """
        if self._stub is None or self.port is None or not self.is_alive():
            return None, None
        if self._aio_stub is None:
            self._aio_channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
            self._aio_stub = ic_grpc.InstanceControlStub(self._aio_channel)
        try:
            answer = await getattr(self._aio_stub, method)(empty_pb2.Empty(), timeout=self.CALL_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            log.debug("%s on %s:%s failed: %s", method, self.spec.fqfn, self.instance_id, exc.code())
            return None, exc.code()
        return answer, None

    async def close_async(self) -> None:
        """Close the loop's channel to the child (after :meth:`stop`)."""
        channel, self._aio_channel, self._aio_stub = self._aio_channel, None, None
        if channel is not None:
            await channel.close()

    def status_proto(self) -> ic.FunctionStatus:
        """``FunctionStatus`` from the child, or the last one known (not running) if it is gone.

        The child fills ``workerId`` with the worker id of its launch. Blocking: on the
        event loop use :meth:`status_async`.
        """
        status = self._call("GetFunctionStatus")
        if status is not None:
            self.last_status = status
            return status
        if self.proc is not None and self.proc.poll() is None:
            # A call that fails right after a crash races the exit: give the process a
            # moment to be reaped, so the status says how it ended.
            try:
                self.proc.wait(0.2)
            except subprocess.TimeoutExpired:
                log.debug("%s:%s still runs after a failed status call", self.spec.fqfn, self.instance_id)
        return self._stale_status()

    async def status_proto_async(self) -> ic.FunctionStatus:
        """:meth:`status_proto` without blocking the event loop."""
        status, code = await self._call_async("GetFunctionStatus")
        if status is not None:
            self.last_status = status
            return status
        if code == grpc.StatusCode.UNAVAILABLE:
            # As in status_proto: the child may just have crashed; poll for its exit
            # briefly instead of waiting on it. A child that is merely slow (deadline
            # exceeded) is reported as not answering at once.
            for _ in range(10):
                if self.proc is None or self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.02)
        return self._stale_status()

    def _stale_status(self) -> ic.FunctionStatus:
        status = ic.FunctionStatus()
        if self.last_status is not None:
            status.CopyFrom(self.last_status)
        status.instanceId = str(self.instance_id)
        status.running = False
        status.failureException = self.failure_text or (
            "instance process is not answering" if self.is_alive() else "instance process has stopped"
        )
        return status

    def status(self) -> dict[str, Any]:
        """The REST API's status fields for this instance (blocking)."""
        return status_dict(self.status_proto())

    async def status_async(self) -> dict[str, Any]:
        """The REST API's status fields for this instance, answered within about a second."""
        return status_dict(await self.status_proto_async())

    def snapshot(self) -> dict[str, Any]:
        """``stats.snapshot()`` of the child, with its latest exceptions (blocking: two gRPC calls)."""
        status = self._call("GetFunctionStatus")
        if status is not None:
            self.last_status = status
        snap: dict[str, Any] = self.stats.snapshot()
        return snap

    async def snapshot_async(self) -> dict[str, Any]:
        """``stats.snapshot()`` without blocking the event loop.

        The latest exceptions (the exception gauges' ``error`` labels) travel in the
        status, not in ``MetricsData``: both are asked for, concurrently.
        """
        (metrics, _code), (status, _status_code) = await asyncio.gather(
            self._call_async("GetMetrics"), self._call_async("GetFunctionStatus")
        )
        if metrics is not None:
            self._last_metrics = metrics
        if status is not None:
            self.last_status = status
        return snapshot_from(self._last_metrics, self.last_status)

    def metrics_proto(self) -> ic.MetricsData:
        """``MetricsData`` from the child, or the last known if it is gone."""
        metrics = self._call("GetMetrics")
        if metrics is not None:
            self._last_metrics = metrics
        return self._last_metrics

    def get_and_reset_metrics(self) -> ic.MetricsData:
        """Metrics since the last reset, then zero them in the child."""
        metrics = self._call("GetAndResetMetrics")
        return metrics if metrics is not None else ic.MetricsData()

    def reset_metrics(self) -> None:
        """Zero the child's metrics."""
        self._call("ResetMetrics")

    def health_check(self) -> bool:
        """The child's own health check (false if it does not answer)."""
        result = self._call("HealthCheck")
        return bool(result is not None and result.success)
