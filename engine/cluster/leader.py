"""What only the leader does: compute and write assignments.

:meth:`AssignmentPlanner.plan` is pure: from the functions, the current assignments,
the live workers and the draining ones, it returns the records to write (removals,
refreshed metadata, new placements, and rebalancing moves). :class:`LeaderDuties`
writes them with the leader's epoch and applies them to the local table at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pulsar

from engine.cluster.assignments import LEADER_KEY, MEMBERS_KEY, AssignmentRecord, AssignmentTable
from engine.cluster.registry import FunctionRegistry
from engine.cluster.scheduler import LeastLoadedScheduler, Scheduler, instance_key
from engine.cluster.topic_io import TopicWriter
from engine.cluster.topics import ClusterTopics
from engine.proto import Function_pb2 as pb

__all__ = ["AssignmentPlanner", "LeaderDuties", "Plan"]

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Records to write: key -> Assignment (``None`` removes)."""

    writes: dict[str, pb.Assignment | None] = field(default_factory=dict)
    moved: int = 0
    placed: int = 0


class AssignmentPlanner:
    """Turns functions + workers into assignment changes."""

    def __init__(self, scheduler: Scheduler | None = None) -> None:
        self.scheduler = scheduler or LeastLoadedScheduler()

    def plan(
        self,
        functions: dict[str, pb.FunctionMetaData],
        current: dict[str, pb.Assignment],
        workers: list[str],
        draining: set[str] = frozenset(),  # type: ignore[assignment]
        rebalance: bool = False,
    ) -> Plan:
        plan = Plan()
        usable = [w for w in workers if w not in draining]
        desired: dict[str, pb.FunctionMetaData] = {}
        for fqfn, md in functions.items():
            for iid in range(max(1, md.functionDetails.parallelism)):
                desired[instance_key(fqfn, iid)] = md
        placement: dict[str, str] = {}
        for key, a in current.items():
            wanted = desired.get(key)
            if wanted is None:
                plan.writes[key] = None
            elif a.workerId in usable:
                placement[key] = a.workerId
                if a.instance.functionMetaData.version != wanted.version:
                    plan.writes[key] = self._assignment(key, wanted, a.workerId)
        unassigned = [key for key in desired if key not in placement]
        for key, worker in self.scheduler.schedule(unassigned, placement, usable).items():
            placement[key] = worker
            plan.writes[key] = self._assignment(key, desired[key], worker)
            plan.placed += 1
        if rebalance:
            for key, worker in self.scheduler.rebalance(placement, usable).items():
                placement[key] = worker
                plan.writes[key] = self._assignment(key, desired[key], worker)
                plan.moved += 1
        return plan

    @staticmethod
    def _assignment(key: str, md: pb.FunctionMetaData, worker: str) -> pb.Assignment:
        iid = int(key.rpartition(":")[2])
        return pb.Assignment(instance=pb.Instance(functionMetaData=md, instanceId=iid), workerId=worker)


class LeaderDuties:
    """Writes assignments, the leader record and membership while this worker leads."""

    def __init__(
        self,
        client: pulsar.Client,
        topics: ClusterTopics,
        worker_id: str,
        table: AssignmentTable,
        planner: AssignmentPlanner | None = None,
    ) -> None:
        self.client = client
        self.topics = topics
        self.worker_id = worker_id
        self.table = table
        self.planner = planner or AssignmentPlanner()
        self.epoch = 0
        self.draining: set[str] = set()
        self._writer: TopicWriter | None = None
        self._lock = asyncio.Lock()
        self.last_schedule_ms = 0.0
        # Timings of the last run, as the worker's metrics report them (milliseconds).
        self.last_schedule_strategy_ms = 0.0
        self.last_rebalance_ms = 0.0
        self.last_rebalance_strategy_ms = 0.0
        self.last_drain_ms = 0.0

    async def _write(self, key: str, value: bytes) -> None:
        if self._writer is None:
            self._writer = await asyncio.to_thread(
                TopicWriter, self.client, self.topics.assignments, f"{self.worker_id}-scheduler-{self.epoch}"
            )
        await self._writer.write(key, value, {"epoch": str(self.epoch)})
        self.table.apply(AssignmentRecord(key, value, self.epoch))

    async def take_office(self, epoch: int, me: dict[str, Any]) -> None:
        """Announce leadership under ``epoch`` (higher than any seen), fencing older leaders."""
        self.epoch = epoch
        await self._write(LEADER_KEY, orjson.dumps({**me, "epoch": epoch, "since": time.time()}))

    async def publish_members(self, members: list[dict[str, Any]]) -> None:
        await self._write(MEMBERS_KEY, orjson.dumps(members))

    async def schedule(self, registry: FunctionRegistry, workers: list[str], rebalance: bool = False) -> Plan:
        """Bring the assignments in line with the functions and live workers."""
        async with self._lock:
            t0 = time.perf_counter()
            plan = self.planner.plan(
                dict(registry.items()), dict(self.table.assignments), workers, self.draining, rebalance
            )
            strategy_ms = (time.perf_counter() - t0) * 1000
            for key, assignment in plan.writes.items():
                await self._write(key, b"" if assignment is None else assignment.SerializeToString())
            self.last_schedule_ms = (time.perf_counter() - t0) * 1000
            self.last_schedule_strategy_ms = strategy_ms
            if rebalance:
                self.last_rebalance_ms, self.last_rebalance_strategy_ms = self.last_schedule_ms, strategy_ms
            if plan.writes:
                log.info(
                    "scheduled: %d writes (%d placed, %d moved) in %.1f ms",
                    len(plan.writes),
                    plan.placed,
                    plan.moved,
                    self.last_schedule_ms,
                )
            return plan

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
