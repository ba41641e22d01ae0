"""A function worker: one process of the cluster.

It loads the metadata (snapshot + recent records), follows the assignments topic,
joins the election, runs its assigned instances, serves the REST API, and while it
leads, schedules. Everything here runs on one asyncio loop that never blocks: client
calls, store opens and closes, and thread joins run on threads; background work runs
as supervised tasks (:class:`~engine.aio.TaskSupervisor`), and a probe measures how
late the loop wakes (``magnetar_worker_event_loop_lag_ms`` in the worker's metrics).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gc
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pulsar
from google.protobuf.message import DecodeError

from engine.aio import LoopLagProbe, TaskSupervisor
from engine.broker.client import BrokerOptions, make_client
from engine.broker.embedded import EmbeddedBroker
from engine.cluster.assignments import AssignmentRecord, AssignmentTable
from engine.cluster.election import LeaderElection, WorkerInfo
from engine.cluster.foreign import check_no_foreign_worker
from engine.cluster.leader import LeaderDuties
from engine.cluster.metadata import MetadataService
from engine.cluster.packages import PackageStore
from engine.cluster.registry import StaleVersion
from engine.cluster.subscriptions import cleanup_after_retired
from engine.cluster.topic_io import TopicTailer, position_key, read_range, topic_end
from engine.cluster.topics import ClusterTopics
from engine.hotpath import load
from engine.instance.instance import InstanceOptions
from engine.instance.secrets import make_secrets_provider
from engine.proto import Function_pb2 as pb
from engine.runtime.manager import ProcessSettings, RuntimeManager
from engine.security.auth_settings import AuthSettings
from engine.security.reserved import reserve_namespace
from engine.security.service import internal_http_options
from engine.security.settings import SecuritySettings
from engine.state import StateStore, open_state_store
from engine.worker.disk import DiskSpace

__all__ = ["CLIENT_LOG", "NotLeader", "Worker", "WorkerConfig"]

log = logging.getLogger(__name__)

#: The Pulsar client's own log, in the worker's data dir (the terminal gets a summary).
CLIENT_LOG = "pulsar-client.log"
#: How long a change waits for a reachable leader before it is answered 503.
LEADER_WAIT_S = 20.0


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
    runtime: str = "process"
    #: The ``cluster`` label of the metrics (Apache's ``pulsarFunctionsCluster``).
    cluster_name: str = "standalone"
    instance: InstanceOptions = field(default_factory=InstanceOptions)
    #: Authentication, authorization and TLS (``functions_worker.yml`` names).
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: Safe defaults: Host/Origin guard, listen address, limits.
    security: SecuritySettings = field(default_factory=SecuritySettings)
    #: Port of the embedded broker (standalone only); a free one when ``None``.
    embedded_broker_port: int | None = None
    #: MiB of the data dir's file system kept free (``--disk-headroom-mb``); ``None``: the
    #: default of :mod:`engine.worker.disk`, 0: no check.
    disk_headroom_mb: float | None = None

    @property
    def url(self) -> str:
        # With TLS on, workers reach each other over HTTPS (the URL is what they announce).
        if self.auth.tls_enabled:
            return f"https://{self.host}:{self.auth.worker_port_tls}"
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
        #: Free space of the data dir and the headroom kept for the broker.
        self.disk = DiskSpace(config.data_dir, config.disk_headroom_mb)
        self.broker: EmbeddedBroker | None = None
        self.client: pulsar.Client | None = None
        self.table = AssignmentTable()
        self.state_store: StateStore | None = None
        self.http: aiohttp.ClientSession | None = None
        self._assign_tailer: TopicTailer | None = None
        self._assign_last: Any = pulsar.MessageId.earliest
        self._known_members: set[str] = set()
        #: Assignment records skipped because they could not be decoded (worker metrics).
        self.undecodable_assignments = 0
        #: How late this worker's event loop wakes (read by the metrics endpoints).
        self.loop_lag = LoopLagProbe()
        #: Set with :attr:`fatal_reason` when a duty the worker cannot run without failed.
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        self._tasks = TaskSupervisor(config.worker_id, on_fatal=self._on_fatal)

    def _on_fatal(self, message: str) -> None:
        self.fatal_reason = message
        self.fatal.set()

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.perf_counter()
        cfg = self.config
        reserve_namespace(cfg.namespace)
        self._tasks.keep(self.loop_lag.run, "event-loop lag probe")
        await asyncio.to_thread(os.makedirs, cfg.data_dir, 0o700, True)
        if cfg.broker is None:
            embedded = EmbeddedBroker(os.path.join(cfg.data_dir, "broker"), port=cfg.embedded_broker_port)
            self.broker = await asyncio.to_thread(embedded.start)
            broker = self.broker.options()
        else:
            broker = cfg.broker
        broker = dataclasses.replace(
            broker,
            consumer_id_spread=cfg.consumer_id_spread,
            client_log_path=broker.client_log_path or os.path.abspath(os.path.join(cfg.data_dir, CLIENT_LOG)),
        )
        self.client = await asyncio.to_thread(make_client, broker, 2)
        await asyncio.to_thread(check_no_foreign_worker, self.client, self.topics)
        # Calls to other workers carry this worker's own credentials (and trust its TLS CA).
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), **internal_http_options(cfg.auth)
        )
        url = cfg.state_storage_url or f"sqlite:///{os.path.abspath(os.path.join(cfg.data_dir, 'state.db'))}"
        self.state_store = await asyncio.to_thread(open_state_store, url)
        self.packages = PackageStore(
            self.client,
            self.topics,
            os.path.join(cfg.data_dir, "package-cache"),
            reserve=self.disk.reserve,
            broker_shares_disk=cfg.broker is None,
        )
        self.metadata = MetadataService(self.client, self.topics, cfg.worker_id, cfg.snapshot_every)
        self.metadata.add_listener(self._on_functions_changed)
        self.duties = LeaderDuties(self.client, self.topics, cfg.worker_id, self.table)
        # Both import modules (the hot path's twin, a secrets provider's class): off the loop.
        hot = await asyncio.to_thread(load, cfg.hotpath)
        secrets = await asyncio.to_thread(make_secrets_provider, cfg.secrets_provider)
        self.runtime = RuntimeManager(
            cfg.worker_id,
            self.client,
            hot,
            self.packages,
            self.state_store,
            secrets,
            cfg.data_dir,
            cfg.instance,
            self._process_settings(broker, url),
            capabilities=broker.capabilities,
        )
        self.runtime.on_retired = self._on_retired
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
            capabilities=broker.capabilities,
        )
        await self.election.start()
        self._tasks.keep(self._failure_checks, "periodic failure checks")
        self.startup_ms = (time.perf_counter() - t0) * 1000
        # What start-up allocated lives as long as the worker: keep it out of the
        # collector's full passes, which would otherwise pause the loop for each of them.
        gc.freeze()
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
        await self._tasks.close()
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
            await asyncio.to_thread(self.duties.close)
        if hasattr(self, "packages"):
            await asyncio.to_thread(self.packages.close)
        if self.http is not None:
            await self.http.close()
        if self.client is not None:
            log.info("%s stopping: client", self.config.worker_id)
            await asyncio.to_thread(self.client.close)
        if self.state_store is not None:
            await asyncio.to_thread(self.state_store.close)
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)

    # -- assignments -----------------------------------------------------------------------------
    def _load_assignments(self) -> None:
        assert self.client is not None
        end = topic_end(self.client, self.topics.assignments)
        msgs, last = read_range(self.client, self.topics.assignments, pulsar.MessageId.earliest, end)
        for msg in msgs:
            self._apply_assignment(msg)
        self._assign_last = last

    def _on_assignments(self, msgs: list[Any]) -> None:
        changed = False
        for msg in msgs:
            changed |= self._apply_assignment(msg)
        if changed:
            self.runtime.sync(self.table.for_worker(self.config.worker_id))

    def _apply_assignment(self, msg: Any) -> bool:
        """Apply one assignments-topic record; an undecodable one is logged, counted and skipped."""
        try:
            return self.table.apply(_assignment_record(msg))
        except (DecodeError, orjson.JSONDecodeError, ValueError, TypeError) as exc:
            self.undecodable_assignments += 1
            log.error(
                "skipping undecodable assignment record %r at %s: %s",
                msg.partition_key(),
                msg.message_id(),
                exc,
            )
            return False

    async def _on_retired(self, fqfn: str, md: pb.FunctionMetaData) -> None:
        """The last instance of ``fqfn`` here stopped: if it was deleted, remove its subscriptions."""
        assert self.client is not None
        prefix = fqfn + ":"

        def deleted() -> bool:
            registered = self.metadata.registry.get(fqfn) is not None
            return not registered and not any(k.startswith(prefix) for k in self.table.assignments)

        await cleanup_after_retired(self.client, md, self._caught_up, deleted)

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
        # The election calls this while TAKING_OFFICE or STEPPING_DOWN: ``is_leader`` is
        # still false while taking office, so the first schedule runs unconditionally.
        if not leader:
            await asyncio.to_thread(self.duties.close)
            return
        await self._caught_up()
        epoch = max(self.metadata.registry.max_epoch, self.table.max_epoch) + 1
        await self.duties.take_office(epoch, {**self.me.to_json(), "generation": self.election.generation})
        members = self.election.live_members()
        self._known_members = {m.worker_id for m in members}
        await self.duties.publish_members([m.to_json() for m in members])
        await self._schedule_now()
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

        self._tasks.spawn(run(), "publishing the membership")

    def _on_functions_changed(self, fqfns: list[str]) -> None:
        if self.election.is_leader if hasattr(self, "election") else False:
            self._tasks.spawn(self.schedule(), f"scheduling after changes to {', '.join(fqfns[:3])}")

    async def schedule(self, rebalance: bool = False) -> Any:
        """Leader: bring assignments in line with functions and live workers."""
        if not self.election.is_leader:
            return None
        return await self._schedule_now(rebalance)

    async def _schedule_now(self, rebalance: bool = False) -> Any:
        workers = [m.worker_id for m in self.election.live_members()]
        return await self.duties.schedule(self.metadata.registry, workers, rebalance)

    async def _failure_checks(self) -> None:
        while True:
            await asyncio.sleep(self.config.failure_check_interval)
            if self.election.is_leader:
                members = self.election.live_members()
                if {m.worker_id for m in members} != self._known_members:
                    # A change while this worker was still taking office was not yet
                    # its to publish: catch up now.
                    self._on_membership(members)
                try:
                    await self.schedule()
                except (pulsar.PulsarException, TimeoutError) as exc:
                    # The broker is away for a moment; the next round tries again.
                    log.warning("%s: periodic schedule failed: %s", self.config.worker_id, exc)

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
        # An election in progress (a restart, a failover) takes a few heartbeat timeouts on a
        # busy machine: a change waits that long for a leader before the caller is told 503.
        deadline = time.monotonic() + LEADER_WAIT_S
        while time.monotonic() < deadline:
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
                except aiohttp.ClientError as exc:
                    log.debug("forwarding %s to the leader at %s failed: %s; retrying", fqfn, url, exc)
            elif self.election.is_leader:
                return await self.metadata.propose(fqfn, metadata, expected, self.duties.epoch)
            await asyncio.sleep(0.1)
        raise NotLeader("no leader is reachable; try again shortly")


def _assignment_record(msg: Any) -> AssignmentRecord:
    return AssignmentRecord(msg.partition_key(), msg.data(), int(msg.properties().get("epoch", "0")))
