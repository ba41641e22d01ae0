"""Run this worker's share of the assignments, and restart instances that die.

:meth:`RuntimeManager.sync` is called with this worker's assignments whenever they
change: missing instances start, removed ones stop, an instance whose function
version changed is restarted with the new code and config, and instances marked
STOPPED in the metadata are stopped (and started again when marked RUNNING). A
monitor restarts instances that died, with exponential backoff, and counts restarts.
Blocking work (fetching packages, subscribing, joining threads) runs off the loop,
and so do status and metrics calls to child processes (:meth:`RuntimeManager.status_async`,
:meth:`RuntimeManager.snapshots` gather them concurrently).

Two runtimes: ``thread`` runs each instance on a thread of the worker, ``process``
runs each in a child process controlled over gRPC (:mod:`engine.runtime.process`),
which isolates the user's code, its imports and its crashes from the worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pulsar

from engine.aio import TaskSupervisor
from engine.broker.capabilities import BrokerCapabilities
from engine.broker.client import BrokerOptions, child_broker_options
from engine.cluster.packages import PackageStore
from engine.cluster.scheduler import split_instance_key
from engine.config.validation import FunctionSpec
from engine.hotpath import HotPath
from engine.instance.crashes import record_exit
from engine.instance.options import InstanceOptions
from engine.proto import Function_pb2 as pb
from engine.runtime.builder import build_instance, default_ledger, identity_of
from engine.runtime.child import Launch
from engine.runtime.forkserver import ForkServer, fork_server_enabled
from engine.runtime.process import InstanceStartError, ProcessInstance
from engine.state.store import StateStore

if TYPE_CHECKING:
    from engine.io.spec import SourceSpec

__all__ = ["InstanceHandle", "InstanceSlot", "ProcessSettings", "RuntimeManager"]


class InstanceHandle(Protocol):
    """What the manager, the REST API and the metrics collector use of a running instance."""

    instance_id: int
    stats: Any

    @property
    def spec(self) -> FunctionSpec | SourceSpec: ...

    def stop(self) -> None: ...

    def is_alive(self) -> bool: ...

    @property
    def failure_text(self) -> str: ...

    def status(self) -> dict[str, Any]: ...

    def snapshot(self) -> dict[str, Any]:
        """The stats snapshot the metrics collector reads (may block on a broker call)."""
        ...


async def _status_of(inst: InstanceHandle) -> dict[str, Any]:
    """The instance's status without blocking the loop (a child answers over gRPC)."""
    if isinstance(inst, ProcessInstance):
        return await inst.status_async()
    return inst.status()  # a thread-runtime instance answers from memory


async def _stop(inst: InstanceHandle) -> None:
    """Stop ``inst`` on a thread (it joins threads or waits for a process), then close its channel."""
    await asyncio.to_thread(inst.stop)
    if isinstance(inst, ProcessInstance):
        await inst.close_async()


async def _snapshot_of(inst: InstanceHandle) -> dict[str, Any]:
    if isinstance(inst, ProcessInstance):
        return await inst.snapshot_async()
    snap: dict[str, Any] = await asyncio.to_thread(inst.snapshot)
    return snap


@dataclass
class ProcessSettings:
    """What a child process of the process runtime needs beyond the function itself."""

    broker: BrokerOptions
    state_storage_url: str | None
    hotpath: str | None = None
    secrets_provider: str | None = None
    log_level: str = "WARNING"
    #: Fork children from a fork server (``MAGNETAR_FORK_SERVER=0``: spawn each afresh).
    fork_server: bool = field(default_factory=fork_server_enabled)


log = logging.getLogger(__name__)


@dataclass
class InstanceSlot:
    """What this worker knows of one assigned instance."""

    key: str
    metadata: pb.FunctionMetaData
    instance: InstanceHandle | None = None
    last_status: dict[str, Any] | None = None
    restarts: int = 0
    failure: str = ""
    last_failure: str = ""  # why it last died or failed to start, kept after it runs again
    next_start: float = 0.0
    backoff: float = 1.0
    busy: bool = False
    started_at: float = field(default_factory=time.monotonic)
    #: Wall-clock time (ms) the running instance started; 0 before the first start.
    started_at_ms: int = 0
    #: Starts tried on this worker (the process runtime spreads a restarted child's consumer ids).
    launches: int = 0

    @property
    def instance_id(self) -> int:
        return split_instance_key(self.key)[1]

    @property
    def wanted(self) -> bool:
        state = self.metadata.instanceStates.get(self.instance_id, pb.RUNNING)
        return state == pb.RUNNING


class RuntimeManager:
    """Runs this worker's instances on threads, or in child processes with ``process`` set."""

    MAX_BACKOFF = 60.0

    def __init__(
        self,
        worker_id: str,
        client: pulsar.Client,
        hot: HotPath,
        packages: PackageStore,
        state_store: StateStore | None,
        secrets_provider: Any,
        data_dir: str,
        options: InstanceOptions | None = None,
        process: ProcessSettings | None = None,
        capabilities: BrokerCapabilities | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.client = client
        self.hot = hot
        self.packages = packages
        self.state_store = state_store
        self.secrets_provider = secrets_provider
        self.data_dir = data_dir
        self.options = options or InstanceOptions()
        self.process = process
        #: What the broker does; the instances' workarounds depend on it.
        self.capabilities = capabilities or BrokerCapabilities.apache()
        self.slots: dict[str, InstanceSlot] = {}
        #: Called with a function's fqfn and metadata once its last instance here has stopped
        #: because it is no longer assigned to this worker (the worker removes its subscriptions).
        self.on_retired: Callable[[str, pb.FunctionMetaData], Awaitable[Any]] | None = None
        #: Instances still stopping after their assignment left, by fqfn.
        self._retiring: dict[str, int] = {}
        self._closing = False
        self._tasks = TaskSupervisor(f"{worker_id} runtime")
        self._monitor: asyncio.Task[Any] | None = None
        #: The fork server children are forked from (process runtime), started with the manager.
        self.forks: ForkServer | None = None
        # Duration of the last instance start and stop, for the worker's metrics (milliseconds).
        self.last_start_ms = 0.0
        self.last_stop_ms = 0.0

    def _spawn(self, coro: Any, what: str) -> None:
        self._tasks.spawn(coro, what)

    def start(self) -> None:
        if self.process is not None and self.process.fork_server and self.forks is None:
            # Its imports run while the worker goes on; the first launch waits for its greeting.
            log_path = os.path.join(os.path.abspath(self.data_dir), "instances", "fork-server.log")
            self.forks = ForkServer(log_path).start()
        self._monitor = self._tasks.keep(self._watch, "instance monitor")

    async def stop(self) -> None:
        self._closing = True
        if self._monitor is not None:
            self._monitor.cancel()
        # Starts under way are not cancelled (their thread would go on and leave an
        # instance no one stops): stopping a slot waits until it is no longer busy.
        results = await asyncio.gather(
            *(self._stop_slot(s) for s in list(self.slots.values())), return_exceptions=True
        )
        for slot, result in zip(list(self.slots.values()), results, strict=True):
            if isinstance(result, BaseException):
                log.warning("stopping %s failed: %s: %s", slot.key, type(result).__name__, result)
        self.slots.clear()
        await self._tasks.close()
        if self.forks is not None:
            await asyncio.to_thread(self.forks.close)

    # -- reconciling ---------------------------------------------------------------------------
    def sync(self, assigned: dict[str, pb.Assignment]) -> None:
        """Make the running instances match ``assigned`` (this worker's assignments)."""
        if self._closing:
            return
        for key in list(self.slots):
            if key not in assigned:
                self._spawn(self._retire(self.slots.pop(key)), f"stopping {key}")
        for key, assignment in assigned.items():
            md = assignment.instance.functionMetaData
            slot = self.slots.get(key)
            if slot is None:
                slot = InstanceSlot(key, md)
                self.slots[key] = slot
                self._spawn(self._converge(slot), f"starting {key}")
            elif slot.metadata.version != md.version:
                # A new version of the code or config restarts the instance; a change of
                # stop/start states alone only stops or starts it.
                same_code = (
                    slot.metadata.functionDetails == md.functionDetails
                    and slot.metadata.packageLocation == md.packageLocation
                    and slot.metadata.transformFunctionPackageLocation == md.transformFunctionPackageLocation
                )
                slot.metadata = md
                slot.backoff = 1.0
                self._spawn(self._converge(slot, restart=not same_code), f"updating {key}")

    def runs(self, fqfn: str) -> bool:
        """Whether an instance of ``fqfn`` is assigned here or still stopping."""
        return fqfn in self._retiring or any(split_instance_key(k)[0] == fqfn for k in self.slots)

    async def _retire(self, slot: InstanceSlot) -> None:
        """Stop an instance no longer assigned here; after the function's last, call :attr:`on_retired`."""
        fqfn = split_instance_key(slot.key)[0]
        self._retiring[fqfn] = self._retiring.get(fqfn, 0) + 1
        try:
            await self._stop_slot(slot)
        finally:
            self._retiring[fqfn] -= 1
            if not self._retiring[fqfn]:
                del self._retiring[fqfn]
        if self.on_retired is not None and not self._closing and not self.runs(fqfn):
            await self.on_retired(fqfn, slot.metadata)

    async def restart(self, key: str) -> bool:
        """Restart one instance now (the ``restart`` admin verb)."""
        slot = self.slots.get(key)
        if slot is None:
            return False
        await self._converge(slot, restart=True)
        return True

    async def _converge(self, slot: InstanceSlot, restart: bool = False) -> None:
        if slot.busy:
            await asyncio.sleep(0.05)
            self._spawn(self._converge(slot, restart), f"converging {slot.key}")
            return
        slot.busy = True
        try:
            if restart or not slot.wanted:
                await self._stop_instance(slot)
            if (
                slot.wanted
                and slot.instance is None
                and self.slots.get(slot.key) is slot
                and not self._closing
            ):
                await self._start_instance(slot)
        finally:
            slot.busy = False

    async def _start_instance(self, slot: InstanceSlot) -> None:
        t0 = time.perf_counter()
        try:
            slot.launches += 1
            inst = await asyncio.to_thread(self._build_and_start, slot.key, slot.metadata, slot.launches - 1)
        except Exception as exc:
            slot.failure = slot.last_failure = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, InstanceStartError) and slot.launches > 1:
                slot.restarts += 1  # a child that died again before it was ready
            slot.next_start = time.monotonic() + slot.backoff
            slot.backoff = min(slot.backoff * 2, self.MAX_BACKOFF)
            log.warning("starting %s failed: %s", slot.key, slot.failure)
            return
        slot.instance = inst
        slot.started_at = time.monotonic()
        slot.started_at_ms = int(time.time() * 1000)
        slot.failure = ""
        self.last_start_ms = (time.perf_counter() - t0) * 1000

    def _child_broker(self, instance_id: int, attempt: int, parallelism: int) -> BrokerOptions:
        """What a child connects with: its consumer-id offset, unless the worker spreads none."""
        broker = self.process.broker if self.process is not None else None
        assert broker is not None
        if not broker.consumer_id_spread:  # --consumer-id-spread 0 turns the workaround off
            return broker
        return child_broker_options(broker, instance_id, attempt, parallelism)

    @property
    def runtime(self) -> str:
        """``"thread"`` or ``"process"``."""
        return "thread" if self.process is None else "process"

    def _details_here(self, md: pb.FunctionMetaData) -> pb.FunctionDetails:
        """The details an instance runs: a sink's transform package fetched to this worker (blocking)."""
        transform = md.transformFunctionPackageLocation
        if not transform.packagePath:
            return md.functionDetails
        from engine.io.transform import with_local_package  # engine.io imports the runtime

        path = self.packages.fetch(transform.packagePath, transform.originalFileName or "transform.py")
        return with_local_package(md.functionDetails, path)

    def _build_and_start(self, key: str, md: pb.FunctionMetaData, attempt: int = 0) -> InstanceHandle:
        """Start instance ``key``; ``attempt`` counts its earlier starts on this worker."""
        fqfn, instance_id = split_instance_key(key)
        location = md.packageLocation
        local: str | None = None
        if location.packagePath:
            local = self.packages.fetch(location.packagePath, location.originalFileName or "package.py")
        details = self._details_here(md)
        options = InstanceOptions(**{**self.options.__dict__, "function_version": str(md.version)})
        if self.process is None:
            # Threads share the worker's streams: what the function prints goes to its own log.
            run_dir = os.path.join(os.path.abspath(self.data_dir), "instances")
            name = fqfn.replace("/", ".")
            options = dataclasses.replace(
                options, output_log=os.path.join(run_dir, f"{name}-{instance_id}.log")
            )
            inst = build_instance(
                details,
                local,
                instance_id,
                self.client,
                self.hot,
                self.state_store,
                self.secrets_provider,
                options,
                self.data_dir,
                self.capabilities,
            )
            inst.start()
            return inst
        settings = self.process
        launch = Launch(
            fqfn=fqfn,
            instance_id=instance_id,
            details=details.SerializeToString(),
            package_path=local,
            broker=asdict(self._child_broker(instance_id, attempt, md.functionDetails.parallelism)),
            state_storage_url=settings.state_storage_url,
            hotpath=settings.hotpath,
            options=asdict(options),
            secrets_provider=settings.secrets_provider,
            worker_id=self.worker_id,
            data_dir=os.path.abspath(self.data_dir),
            log_level=settings.log_level,
        )
        handle = ProcessInstance(
            identity_of(md.functionDetails, local),
            launch,
            os.path.join(self.data_dir, "instances"),
            options.stop_grace_s,
            self.forks,
        )
        handle.start()
        return handle

    async def _stop_instance(self, slot: InstanceSlot) -> None:
        inst, slot.instance = slot.instance, None
        if inst is not None:
            t0 = time.perf_counter()
            await _stop(inst)
            self.last_stop_ms = (time.perf_counter() - t0) * 1000

    async def _stop_slot(self, slot: InstanceSlot) -> None:
        while slot.busy:
            await asyncio.sleep(0.05)
        slot.busy = True
        try:
            await self._stop_instance(slot)
        finally:
            slot.busy = False

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for slot in list(self.slots.values()):
                if slot.busy or not slot.wanted:
                    continue
                inst = slot.instance
                if inst is not None and not inst.is_alive():
                    slot.failure = slot.last_failure = inst.failure_text
                    if self.process is not None and slot.failure:
                        # Tell the next start how the process ended, for crash attribution.
                        spec = inst.spec
                        how = slot.failure.removeprefix("instance process ")
                        record_exit(default_ledger(spec, inst.instance_id, self.data_dir), how)
                    slot.last_status = await _status_of(inst)
                    # reap the process / join the thread
                    self._spawn(_stop(inst), f"reaping {slot.key}")
                    slot.instance = None
                    slot.restarts += 1
                    slot.next_start = now + slot.backoff
                    slot.backoff = min(slot.backoff * 2, self.MAX_BACKOFF)
                    log.warning("%s died (%s); restarting in %.0fs", slot.key, slot.failure, slot.backoff / 2)
                elif inst is None and now >= slot.next_start:
                    self._spawn(self._converge(slot), f"restarting {slot.key}")
                elif inst is not None and now - slot.started_at > 60:
                    slot.backoff = 1.0  # healthy for a minute: forget past failures

    # -- status --------------------------------------------------------------------------------
    async def status_async(self, key: str) -> dict[str, Any] | None:
        """Apache's per-instance status fields, or ``None`` if not assigned here.

        A child process that does not answer costs at most its call deadline, off the loop.
        """
        slot = self.slots.get(key)
        if slot is None:
            return None
        live = await _status_of(slot.instance) if slot.instance is not None else None
        return self._status_fields(slot, live)

    def status(self, key: str) -> dict[str, Any] | None:
        """Blocking form of :meth:`status_async` (for callers on a thread)."""
        slot = self.slots.get(key)
        if slot is None:
            return None
        return self._status_fields(slot, slot.instance.status() if slot.instance is not None else None)

    def _status_fields(self, slot: InstanceSlot, live: dict[str, Any] | None) -> dict[str, Any]:
        if live is not None:
            st = live
        elif slot.last_status is not None:
            st = dict(slot.last_status, running=False)
        else:
            st = {
                "running": False,
                "numReceived": 0,
                "numSuccessfullyProcessed": 0,
                "numUserExceptions": 0,
                "latestUserExceptions": [],
                "numSystemExceptions": 0,
                "latestSystemExceptions": [],
                "averageLatency": 0.0,
                "lastInvocationTime": 0,
            }
        st.pop("instanceId", None)
        st["error"] = slot.failure or st.get("error", "")
        st["numRestarts"] = slot.restarts
        st["workerId"] = self.worker_id
        st["instanceStartTimeMs"] = slot.started_at_ms
        if not slot.wanted:
            st["running"] = False
        return st

    def instances(self) -> list[InstanceHandle]:
        """Running instances (for metrics)."""
        return [s.instance for s in self.slots.values() if s.instance is not None]

    async def snapshots(self) -> list[tuple[InstanceHandle, dict[str, Any]]]:
        """``(instance, stats snapshot)`` of every running instance, gathered concurrently."""
        running = self.instances()
        snaps = await asyncio.gather(*(_snapshot_of(inst) for inst in running))
        return list(zip(running, snaps, strict=True))
