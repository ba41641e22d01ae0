"""Instance scheduling: which worker runs which instance.

The interface mirrors Pulsar's ``IScheduler``: :meth:`Scheduler.schedule` places
unassigned instances, :meth:`Scheduler.rebalance` moves assigned ones to even out the
load. Instances are ``"tenant/namespace/name:instanceId"`` strings; the current
assignment is a mapping of instance to worker id.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Protocol

__all__ = ["LeastLoadedScheduler", "Scheduler", "instance_key", "split_instance_key"]


def instance_key(fqfn: str, instance_id: int) -> str:
    """``tenant/namespace/name:instanceId``."""
    return f"{fqfn}:{instance_id}"


def split_instance_key(key: str) -> tuple[str, int]:
    """Inverse of :func:`instance_key`."""
    fqfn, _, iid = key.rpartition(":")
    return fqfn, int(iid)


class Scheduler(Protocol):
    """A scheduling strategy."""

    def schedule(self, unassigned: list[str], current: dict[str, str], workers: list[str]) -> dict[str, str]:
        """New placements (instance -> worker) for ``unassigned``."""

    def rebalance(self, current: dict[str, str], workers: list[str]) -> dict[str, str]:
        """Instances to move (instance -> new worker) so the load is even."""


class LeastLoadedScheduler:
    """Each unassigned instance goes to the worker running the fewest; rebalance levels to within one."""

    def schedule(self, unassigned: list[str], current: dict[str, str], workers: list[str]) -> dict[str, str]:
        if not workers:
            return {}
        load = Counter({w: 0 for w in workers})
        for worker in current.values():
            if worker in load:
                load[worker] += 1
        heap = [(count, worker) for worker, count in load.items()]
        heapq.heapify(heap)
        placed: dict[str, str] = {}
        for inst in sorted(unassigned):
            count, worker = heapq.heappop(heap)
            placed[inst] = worker
            heapq.heappush(heap, (count + 1, worker))
        return placed

    def rebalance(self, current: dict[str, str], workers: list[str]) -> dict[str, str]:
        if len(workers) < 2:
            return {}
        by_worker: dict[str, list[str]] = {w: [] for w in workers}
        for inst, worker in sorted(current.items()):
            if worker in by_worker:
                by_worker[worker].append(inst)
        moves: dict[str, str] = {}
        while True:
            most = max(by_worker, key=lambda w: (len(by_worker[w]), w))
            least = min(by_worker, key=lambda w: (len(by_worker[w]), w))
            if len(by_worker[most]) - len(by_worker[least]) <= 1:
                return moves
            inst = by_worker[most].pop()
            by_worker[least].append(inst)
            moves[inst] = least
