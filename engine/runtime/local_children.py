"""localrun's process runtime: each instance in a child process of its own, restarted when it dies.

:class:`LocalChildren` does for ``magnetar functions localrun`` what the worker's
runtime manager does for its assignments under ``--runtime process``: it forks one
child per instance (:class:`engine.runtime.process.ProcessInstance`, the same launch
file and child entry point; the first straight from this process, the others from a
fork server: :mod:`engine.runtime.forkserver.direct`), and a watch thread notices a child that
died, tells its crash ledger how it ended (so the next child counts a failed attempt
for the input that was running, and dead-letters it after ``maxMessageRetries``) and
starts a new one after a capped exponential backoff, counting the restarts in
``numRestarts``. A function that kills its process therefore costs that message a
retry, not the whole localrun.

Each child connects to the broker itself (as a worker's child does, with its
instance's consumer-id offset on pulsar-lite) and opens the state store by URL; the
localrun process keeps no client of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engine.broker.client import BrokerOptions, child_broker_options
from engine.config.details import to_details
from engine.config.validation import FunctionSpec
from engine.instance.crashes import record_exit
from engine.instance.options import InstanceOptions
from engine.runtime.builder import default_ledger
from engine.runtime.child import Launch
from engine.runtime.forkserver import fork_server_enabled
from engine.runtime.forkserver.direct import DirectForks
from engine.runtime.process import InstanceStartError, ProcessInstance

__all__ = ["ChildSettings", "LocalChildren"]

log = logging.getLogger(__name__)


@dataclass
class ChildSettings:
    """What every child of one localrun is launched with."""

    broker: BrokerOptions
    data_dir: str
    state_storage_url: str | None
    hotpath: str | None
    instance: InstanceOptions
    secrets_provider: str | None = None
    secrets_provider_config: dict[str, Any] | None = None
    log_level: str = "WARNING"


@dataclass
class _Slot:
    instance_id: int
    child: ProcessInstance | None = None
    launches: int = 0
    restarts: int = 0
    failure: str = ""
    backoff: float = 1.0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    last_status: dict[str, Any] | None = None


class LocalChildren:
    """Instances ``instance_ids`` of ``spec``, a child process each, kept running until :meth:`stop`."""

    #: Longest wait before restarting a child that keeps dying.
    MAX_BACKOFF = 30.0
    #: How often the watch thread looks at the children.
    WATCH_EVERY_S = 0.2

    def __init__(self, spec: FunctionSpec, settings: ChildSettings, instance_ids: list[int]) -> None:
        self.spec = spec
        self.settings = settings
        self.run_dir = os.path.join(os.path.abspath(settings.data_dir), "instances")
        self._details = to_details(spec).SerializeToString()
        self._package = os.path.abspath(spec.py) if spec.py else None
        self._slots = [_Slot(i) for i in instance_ids]
        self.forks: DirectForks | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start every child and wait until each runs; raises :class:`InstanceStartError`."""
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        if fork_server_enabled():
            # The first child is forked from this process; a fork server starts when needed.
            self.forks = DirectForks(os.path.join(self.run_dir, "fork-server.log"))
        try:
            for slot in self._slots:
                child = self._new_child(slot)
                try:
                    child.start()
                except InstanceStartError as exc:
                    if not exc.died:
                        raise
                    # A crash, not a bad function: an input of the backlog may have
                    # ended it at once. The watch restarts it (its ledger has how).
                    self._died_starting(slot, str(exc))
                    continue
                slot.child = child
                slot.started_at = time.monotonic()
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._watch, name="localrun-children", daemon=True)
        self._watcher.start()

    def _new_child(self, slot: _Slot) -> ProcessInstance:
        s, instance_id = self.settings, slot.instance_id
        slot.launches += 1
        options = dataclasses.replace(
            s.instance,
            crash_ledger=s.instance.crash_ledger or default_ledger(self.spec, instance_id, s.data_dir),
        )
        launch = Launch(
            fqfn=self.spec.fqfn,
            instance_id=instance_id,
            details=self._details,
            package_path=self._package,
            broker=dataclasses.asdict(
                child_broker_options(s.broker, instance_id, slot.launches - 1, self.spec.parallelism)
            ),
            state_storage_url=s.state_storage_url,
            hotpath=s.hotpath,
            options=dataclasses.asdict(options),
            secrets_provider=s.secrets_provider,
            secrets_provider_config=s.secrets_provider_config,
            worker_id="localrun",
            data_dir=os.path.abspath(s.data_dir),
            log_level=s.log_level,
        )
        return ProcessInstance(self.spec, launch, self.run_dir, s.instance.stop_grace_s, self.forks)

    def stop(self) -> None:
        """Stop every child in order (inputs settled, outputs flushed), then the fork server."""
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        with self._lock:
            children = [s.child for s in self._slots if s.child is not None]
        threads = [threading.Thread(target=child.stop) for child in children]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.forks is not None:
            self.forks.close()

    # -- the watch -------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.WATCH_EVERY_S):
            for slot in self._slots:
                if self._stop.is_set():
                    return
                self._look_at(slot, time.monotonic())

    def _look_at(self, slot: _Slot, now: float) -> None:
        child = slot.child
        if child is not None and not child.is_alive():
            slot.failure = child.failure_text or "instance process has stopped"
            # Tell the next child how this one ended, for crash attribution.
            record_exit(
                default_ledger(self.spec, slot.instance_id, self.settings.data_dir),
                slot.failure.removeprefix("instance process "),
            )
            slot.last_status = child.status()
            child.stop()  # reaps it
            with self._lock:
                slot.child = None
            slot.restarts += 1
            slot.next_start = now + slot.backoff
            log.warning(
                "%s:%s died (%s); restarting in %.0fs",
                self.spec.fqfn,
                slot.instance_id,
                slot.failure,
                slot.backoff,
            )
            slot.backoff = min(slot.backoff * 2, self.MAX_BACKOFF)
        elif child is None and now >= slot.next_start:
            fresh = self._new_child(slot)
            try:
                fresh.start()
            except InstanceStartError as exc:
                self._died_starting(slot, str(exc))
                return
            with self._lock:
                slot.child = fresh
            slot.failure = ""
            slot.started_at = time.monotonic()
        elif child is not None and now - slot.started_at > 60:
            slot.backoff = 1.0  # healthy for a minute: forget past failures

    def _died_starting(self, slot: _Slot, failure: str) -> None:
        """A child ended before it was ready: that too is a restart, after the backoff."""
        slot.failure = failure
        slot.restarts += 1
        slot.next_start = time.monotonic() + slot.backoff
        slot.backoff = min(slot.backoff * 2, self.MAX_BACKOFF)
        log.warning("%s:%s did not start: %s", self.spec.fqfn, slot.instance_id, failure)

    # -- status ----------------------------------------------------------------------------
    @property
    def instances(self) -> list[ProcessInstance]:
        """The running children (for metrics)."""
        with self._lock:
            return [s.child for s in self._slots if s.child is not None]

    def alive(self) -> bool:
        """True while any instance runs or is about to be restarted (always, until :meth:`stop`)."""
        return not self._stop.is_set()

    def status(self) -> list[dict[str, Any]]:
        """Each instance's status, with its restarts and why it last died."""
        out = []
        for slot in self._slots:
            with self._lock:
                child = slot.child
            if child is not None:
                st = child.status()
            else:
                st = dict(slot.last_status or {}, running=False)
            st["numRestarts"] = slot.restarts
            if slot.failure and not st.get("error"):
                st["error"] = slot.failure
            st.setdefault("instanceId", str(slot.instance_id))
            out.append(st)
        return out
