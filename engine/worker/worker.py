"""A function worker: one process of the cluster.

It loads the metadata (snapshot + recent records), follows the assignments topic,
joins the election, runs its assigned instances, serves the REST API, and while it
leads, schedules. Everything here runs on one asyncio loop; blocking client calls
run on threads.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pulsar

from engine.broker.client import BrokerOptions, make_client
from engine.broker.embedded import EmbeddedBroker
from engine.cluster.assignments import AssignmentRecord, AssignmentTable
from engine.cluster.election import LeaderElection, WorkerInfo
from engine.cluster.foreign import check_no_foreign_worker
from engine.cluster.leader import LeaderDuties
from engine.cluster.metadata import MetadataService
from engine.cluster.packages import PackageStore
from engine.cluster.registry import StaleVersion
from engine.cluster.topic_io import TopicTailer, position_key, read_range, topic_end
from engine.cluster.topics import ClusterTopics
from engine.hotpath import load
from engine.instance.instance import InstanceOptions
from engine.instance.secrets import make_secrets_provider
from engine.proto import Function_pb2 as pb
from engine.runtime.manager import ProcessSettings, RuntimeManager
from engine.state import StateStore, open_state_store

__all__ = ["NotLeader", "Worker", "WorkerConfig"]

log = logging.getLogger(__name__)


class NotLeader(Exception):
    """This worker is not the leader (and no leader is known to forward to)."""


@dataclass
class WorkerConfig:
    """Settings of one worker process."""

    worker_id: str
    data_dir: str
    broker: BrokerOptions | None = None
    host: str = "127.0.0.1"
    port: int = 6750
    namespace: str = "public/functions"
    state_storage_url: str | None = None
    hotpath: str | None = None
    heartbeat_interval: float = 0.5
    election_timeout: float = 2.0
    failure_check_interval: float = 2.0
    snapshot_every: int = 1000
    secrets_provider: str | None = None
    consumer_id_spread: int = 4096
    runtime: str = "thread"
    #: The ``cluster`` label of the metrics (Apache's ``pulsarFunctionsCluster``).
    cluster_name: str = "standalone"
    instance: InstanceOptions = field(default_factory=InstanceOptions)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class Worker:
    """Wires the cluster services together; see the module docstring."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.topics = ClusterTopics(config.namespace)
        self.me = WorkerInfo(config.worker_id, config.url)
        self.initialized = False
        self.started_at = time.time()
        self.startup_ms = 0.0
        self.broker: EmbeddedBroker | None = None
        self.client: pulsar.Client | None = None
        self.table = AssignmentTable()
        self.state_store: StateStore | None = None
        self.http: aiohttp.ClientSession | None = None
        self._assign_tailer: TopicTailer | None = None
        self._assign_last: Any = pulsar.MessageId.earliest
        self._tasks: list[asyncio.Task[None]] = []
        self._known_members: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.perf_counter()
        cfg = self.config
        os.makedirs(cfg.data_dir, exist_ok=True)
        if cfg.broker is None:
            self.broker = await asyncio.to_thread(EmbeddedBroker(os.path.join(cfg.data_dir, "broker")).start)
            broker = self.broker.options()
            cfg.instance = dataclasses.replace(cfg.instance, broker_deduplication=False)
        else:
            broker = cfg.broker
        broker = dataclasses.replace(broker, consumer_id_spread=cfg.consumer_id_spread)
        self.client = await asyncio.to_thread(make_client, broker, 2)
        await asyncio.to_thread(check_no_foreign_worker, self.client, self.topics)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        url = cfg.state_storage_url or f"sqlite:///{os.path.abspath(os.path.join(cfg.data_dir, 'state.db'))}"
        self.state_store = open_state_store(url)
        self.packages = PackageStore(self.client, self.topics, os.path.join(cfg.data_dir, "package-cache"))
        self.metadata = MetadataService(self.client, self.topics, cfg.worker_id, cfg.snapshot_every)
        self.metadata.add_listener(self._on_functions_changed)
        self.duties = LeaderDuties(self.client, self.topics, cfg.worker_id, self.table)
        self.runtime = RuntimeManager(
            cfg.worker_id,
            self.client,
            load(cfg.hotpath),
            self.packages,
            self.state_store,
            make_secrets_provider(cfg.secrets_provider),
            cfg.data_dir,
            cfg.instance,
            self._process_settings(broker, url),
        )
        await self.metadata.start()
        await asyncio.to_thread(self._load_assignments)
        self._assign_tailer = TopicTailer(
            self.client,
            self.topics.assignments,
            self._assign_last,
            asyncio.get_running_loop(),
            self._on_assignments,
        )
        self._assign_tailer.start()
        self.runtime.start()
        self.runtime.sync(self.table.for_worker(cfg.worker_id))
        self.election = LeaderElection(
            self.client,
            self.topics,
            self.me,
            self._on_leadership,
            self._on_membership,
            interval=cfg.heartbeat_interval,
            timeout=cfg.election_timeout,
            announced=lambda: self.table.leader,
        )
        await self.election.start()
        self._tasks.append(asyncio.create_task(self._failure_checks()))
        self.startup_ms = (time.perf_counter() - t0) * 1000
        self.initialized = True

    def _process_settings(self, broker: BrokerOptions, state_url: str) -> ProcessSettings | None:
        cfg = self.config
        if cfg.runtime == "thread":
            return None
        if cfg.runtime != "process":
            raise ValueError(f"--runtime {cfg.runtime!r}: expected thread or process")
        return ProcessSettings(
            broker=broker,
            state_storage_url=state_url,
            hotpath=cfg.hotpath,
            secrets_provider=cfg.secrets_provider,
            log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        )

    async def stop(self) -> None:
        self.initialized = False
        for task in self._tasks:
            task.cancel()
        log.info("%s stopping: instances first, so their inputs are settled", self.config.worker_id)
        if hasattr(self, "runtime"):
            await self.runtime.stop()
        log.info("%s stopping: election", self.config.worker_id)
        if hasattr(self, "election"):
            await self.election.stop()
        if self._assign_tailer is not None:
            await asyncio.to_thread(self._assign_tailer.stop)
        if hasattr(self, "metadata"):
            await asyncio.to_thread(self.metadata.stop)
        if hasattr(self, "duties"):
            self.duties.close()
        if hasattr(self, "packages"):
            self.packages.close()
        if self.http is not None:
            await self.http.close()
        if self.client is not None:
            log.info("%s stopping: client", self.config.worker_id)
            await asyncio.to_thread(self.client.close)
        if self.state_store is not None:
            self.state_store.close()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)

    # -- assignments -----------------------------------------------------------------------------
    def _load_assignments(self) -> None:
        assert self.client is not None
        end = topic_end(self.client, self.topics.assignments)
        msgs, last = read_range(self.client, self.topics.assignments, pulsar.MessageId.earliest, end)
        for msg in msgs:
            self.table.apply(_assignment_record(msg))
        self._assign_last = last

    def _on_assignments(self, msgs: list[Any]) -> None:
        changed = False
        for msg in msgs:
            changed |= self.table.apply(_assignment_record(msg))
        if changed:
            self.runtime.sync(self.table.for_worker(self.config.worker_id))

    async def _caught_up(self, timeout: float = 5.0) -> None:
        """Wait until the tailers have applied everything written before now."""
        assert self.client is not None
        ends = await asyncio.gather(
            asyncio.to_thread(topic_end, self.client, self.topics.assignments),
            asyncio.to_thread(topic_end, self.client, self.topics.metadata),
        )
        deadline = time.monotonic() + timeout
        tailers = [self._assign_tailer, self.metadata._tailer]
        while time.monotonic() < deadline:
            done = True
            for tailer, end in zip(tailers, ends, strict=True):
                if end is None or tailer is None:
                    continue
                if tailer.last_position is None or tailer.last_position < position_key(end):
                    done = False
            if done:
                return
            await asyncio.sleep(0.02)

    # -- leadership ------------------------------------------------------------------------------
    async def _on_leadership(self, leader: bool) -> None:
        if not leader:
            self.duties.close()
            return
        await self._caught_up()
        epoch = max(self.metadata.registry.max_epoch, self.table.max_epoch) + 1
        await self.duties.take_office(epoch, {**self.me.to_json(), "generation": self.election.generation})
        members = self.election.live_members()
        self._known_members = {m.worker_id for m in members}
        await self.duties.publish_members([m.to_json() for m in members])
        await self.schedule()
        await self.metadata.write_snapshot(epoch)

    def _on_membership(self, members: list[WorkerInfo]) -> None:
        if not hasattr(self, "election") or not self.election.is_leader:
            return
        ids = {m.worker_id for m in members}
        joined = bool(ids - self._known_members)
        self._known_members = ids
        self.duties.draining &= ids

        async def run() -> None:
            await self.duties.publish_members([m.to_json() for m in members])
            await self.schedule(rebalance=joined)

        self._tasks.append(asyncio.create_task(run()))

    def _on_functions_changed(self, fqfns: list[str]) -> None:
        if self.election.is_leader if hasattr(self, "election") else False:
            self._tasks.append(asyncio.create_task(self.schedule()))

    async def schedule(self, rebalance: bool = False) -> Any:
        """Leader: bring assignments in line with functions and live workers."""
        if not self.election.is_leader:
            return None
        workers = [m.worker_id for m in self.election.live_members()]
        return await self.duties.schedule(self.metadata.registry, workers, rebalance)

    async def _failure_checks(self) -> None:
        while True:
            await asyncio.sleep(self.config.failure_check_interval)
            self._tasks = [t for t in self._tasks if not t.done()]
            if self.election.is_leader:
                try:
                    await self.schedule()
                except Exception:
                    log.exception("periodic schedule failed")

    # -- metadata changes (any worker) -------------------------------------------------------------
    def leader_url(self) -> str | None:
        """The leader's REST URL as announced on the assignments topic."""
        if self.election.is_leader:
            return self.config.url
        url = self.table.leader.get("url")
        return str(url) if url else None

    async def submit(
        self, fqfn: str, metadata: pb.FunctionMetaData | None, expected_version: int | None
    ) -> int:
        """Record a change: directly when leading, else through the leader. Raises StaleVersion."""
        if self.election.is_leader:
            version = await self.metadata.propose(fqfn, metadata, expected_version, self.duties.epoch)
        else:
            version = await self._forward(fqfn, metadata, expected_version)
        deadline = time.monotonic() + 10
        while self.metadata.registry.current_version(fqfn) < version and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # read-your-writes on this worker
        return version

    async def _forward(self, fqfn: str, metadata: pb.FunctionMetaData | None, expected: int | None) -> int:
        for _ in range(50):
            url = self.leader_url()
            if url and url != self.config.url:
                body = {
                    "metadata": base64.b64encode(metadata.SerializeToString()).decode() if metadata else None,
                    "expectedVersion": expected,
                }
                assert self.http is not None
                try:
                    async with self.http.put(f"{url}/admin/v3/functions/leader/{fqfn}", json=body) as resp:
                        data = await resp.json(content_type=None)
                        if resp.status == 200:
                            return int(data["version"])
                        if resp.status == 409:
                            raise StaleVersion(data.get("reason", "stale version"))
                        if resp.status != 503:
                            raise RuntimeError(f"leader answered {resp.status}: {data}")
                except aiohttp.ClientError:
                    pass
            elif self.election.is_leader:
                return await self.metadata.propose(fqfn, metadata, expected, self.duties.epoch)
            await asyncio.sleep(0.1)
        raise NotLeader("no leader is reachable; try again shortly")


def _assignment_record(msg: Any) -> AssignmentRecord:
    return AssignmentRecord(msg.partition_key(), msg.data(), int(msg.properties().get("epoch", "0")))
