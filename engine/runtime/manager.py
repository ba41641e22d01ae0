"""Run this worker's share of the assignments, and restart instances that die.

:meth:`RuntimeManager.sync` is called with this worker's assignments whenever they
change: missing instances start, removed ones stop, an instance whose function
version changed is restarted with the new code and config, and instances marked
STOPPED in the metadata are stopped (and started again when marked RUNNING). A
monitor restarts instances that died, with exponential backoff, and counts restarts.
Blocking work (fetching packages, subscribing, joining threads) runs off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pulsar

from engine.cluster.packages import PackageStore
from engine.cluster.scheduler import split_instance_key
from engine.config.details import config_from_details
from engine.config.validation import resolve
from engine.function.loader import add_code_paths, load_function
from engine.function.package import prepare_package
from engine.hotpath import HotPath
from engine.instance.instance import FunctionInstance, InstanceOptions
from engine.proto import Function_pb2 as pb
from engine.state.store import StateStore

__all__ = ["InstanceSlot", "RuntimeManager"]

log = logging.getLogger(__name__)


@dataclass
class InstanceSlot:
    """What this worker knows of one assigned instance."""

    key: str
    metadata: pb.FunctionMetaData
    instance: FunctionInstance | None = None
    restarts: int = 0
    failure: str = ""
    next_start: float = 0.0
    backoff: float = 1.0
    busy: bool = False
    started_at: float = field(default_factory=time.monotonic)

    @property
    def instance_id(self) -> int:
        return split_instance_key(self.key)[1]

    @property
    def wanted(self) -> bool:
        state = self.metadata.instanceStates.get(self.instance_id, pb.RUNNING)
        return state == pb.RUNNING


class RuntimeManager:
    """Thread runtime: each instance runs on its own thread inside the worker."""

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
    ) -> None:
        self.worker_id = worker_id
        self.client = client
        self.hot = hot
        self.packages = packages
        self.state_store = state_store
        self.secrets_provider = secrets_provider
        self.data_dir = data_dir
        self.options = options or InstanceOptions()
        self.slots: dict[str, InstanceSlot] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def start(self) -> None:
        self._monitor = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        self._closing = True
        if self._monitor is not None:
            self._monitor.cancel()
        await asyncio.gather(*(self._stop_slot(s) for s in list(self.slots.values())), return_exceptions=True)
        self.slots.clear()

    # -- reconciling ---------------------------------------------------------------------------
    def sync(self, assigned: dict[str, pb.Assignment]) -> None:
        """Make the running instances match ``assigned`` (this worker's assignments)."""
        if self._closing:
            return
        for key in list(self.slots):
            if key not in assigned:
                self._spawn(self._stop_slot(self.slots.pop(key)))
        for key, assignment in assigned.items():
            md = assignment.instance.functionMetaData
            slot = self.slots.get(key)
            if slot is None:
                slot = InstanceSlot(key, md)
                self.slots[key] = slot
                self._spawn(self._converge(slot))
            elif slot.metadata.version != md.version:
                # A new version of the code or config restarts the instance; a change of
                # stop/start states alone only stops or starts it.
                same_code = (
                    slot.metadata.functionDetails == md.functionDetails
                    and slot.metadata.packageLocation == md.packageLocation
                )
                slot.metadata = md
                slot.backoff = 1.0
                self._spawn(self._converge(slot, restart=not same_code))

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
            self._spawn(self._converge(slot, restart))
            return
        slot.busy = True
        try:
            if restart or not slot.wanted:
                await self._stop_instance(slot)
            if slot.wanted and slot.instance is None and self.slots.get(slot.key) is slot:
                await self._start_instance(slot)
        finally:
            slot.busy = False

    async def _start_instance(self, slot: InstanceSlot) -> None:
        try:
            inst = await asyncio.to_thread(self._build_and_start, slot.key, slot.metadata)
        except Exception as exc:
            slot.failure = f"{type(exc).__name__}: {exc}"
            slot.next_start = time.monotonic() + slot.backoff
            slot.backoff = min(slot.backoff * 2, self.MAX_BACKOFF)
            log.warning("starting %s failed: %s", slot.key, slot.failure)
            return
        slot.instance = inst
        slot.started_at = time.monotonic()
        slot.failure = ""

    def _build_and_start(self, key: str, md: pb.FunctionMetaData) -> FunctionInstance:
        _fqfn, instance_id = split_instance_key(key)
        config = config_from_details(md.functionDetails)
        location = md.packageLocation
        paths: list[str] = []
        if location.packagePath:
            local = self.packages.fetch(location.packagePath, location.originalFileName or "package.py")
            config.py = local
            paths = prepare_package(local, os.path.join(self.data_dir, "packages"))
            add_code_paths(paths)
        spec = resolve(config)
        function = load_function(spec.class_name, paths)
        options = InstanceOptions(**{**self.options.__dict__, "function_version": str(md.version)})
        inst = FunctionInstance(
            spec,
            instance_id,
            function,
            self.client,
            self.hot,
            self.state_store,
            self.secrets_provider,
            options,
        )
        inst.start()
        return inst

    async def _stop_instance(self, slot: InstanceSlot) -> None:
        inst, slot.instance = slot.instance, None
        if inst is not None:
            await asyncio.to_thread(inst.stop)

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
                    slot.failure = inst.failure_text
                    slot.instance = None
                    slot.restarts += 1
                    slot.next_start = now + slot.backoff
                    slot.backoff = min(slot.backoff * 2, self.MAX_BACKOFF)
                    log.warning("%s died (%s); restarting in %.0fs", slot.key, slot.failure, slot.backoff / 2)
                elif inst is None and now >= slot.next_start:
                    self._spawn(self._converge(slot))
                elif inst is not None and now - slot.started_at > 60:
                    slot.backoff = 1.0  # healthy for a minute: forget past failures

    # -- status --------------------------------------------------------------------------------
    def status(self, key: str) -> dict[str, Any] | None:
        """Apache's per-instance status fields, or ``None`` if not assigned here."""
        slot = self.slots.get(key)
        if slot is None:
            return None
        if slot.instance is not None:
            st = slot.instance.status()
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
        if not slot.wanted:
            st["running"] = False
        return st

    def instances(self) -> list[FunctionInstance]:
        """Running instances (for metrics)."""
        return [s.instance for s in self.slots.values() if s.instance is not None]
