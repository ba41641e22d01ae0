"""A mesh's status as one unit: a ``MeshReady`` condition over per-member conditions, and the topics between.

Conditions follow Function Mesh's ``{condition, status, action}`` with a ``reason``:
a member is ready when every instance runs, in error when an instance failed
(it has an error and has been restarted), and pending otherwise. The mesh is ready when
every member is, in error when any member is, else pending.

For every internal topic (written by one member, read by another), the backlog is what
its producers wrote minus what its consumers received, from the instances' counters
since they started, and the rate is the consumers' receive rate between two samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.mesh.graph import MeshGraph
from engine.mesh.members import ResolvedMember
from engine.mesh.model import MemberKind

__all__ = ["MeshSampler", "member_condition", "mesh_condition", "mesh_status"]

_CONDITION = {
    MemberKind.FUNCTION: "FunctionReady",
    MemberKind.SOURCE: "SourceReady",
    MemberKind.SINK: "SinkReady",
}


def member_condition(kind: MemberKind, instances: list[dict[str, Any]]) -> dict[str, Any]:
    """The member's condition from its instances' status fields."""
    running = sum(1 for s in instances if s.get("running"))
    failing = [
        s for s in instances if s.get("error") and not s.get("running") and s.get("numRestarts", 0) > 0
    ]
    if instances and running == len(instances):
        state, status, reason, action = "ready", "True", "AllInstancesRunning", "NoAction"
    elif failing:
        state, status, action = "error", "False", "Wait"
        reason = f"InstanceFailing: {failing[0].get('error')}"
    else:
        state, status, action = "pending", "False", "Wait"
        reason = f"InstancesStarting: {running} of {len(instances)} running"
    return {
        "condition": _CONDITION[kind],
        "status": status,
        "action": action,
        "reason": reason,
        "state": state,
    }


def mesh_condition(members: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``(state, MeshReady condition)`` over members carrying ``name`` and a ``condition``.

    The mesh is ready when every member is, in error when any member is, else pending.
    """
    states = [m["condition"]["state"] for m in members]
    if states and all(s == "ready" for s in states):
        return "ready", {
            "condition": "MeshReady",
            "status": "True",
            "action": "NoAction",
            "reason": "AllMembersReady",
        }
    if "error" in states:
        bad = [m["name"] for m in members if m["condition"]["state"] == "error"]
        return "error", {
            "condition": "MeshReady",
            "status": "False",
            "action": "Wait",
            "reason": "MembersFailing: " + ", ".join(bad),
        }
    waiting = [m["name"] for m in members if m["condition"]["state"] != "ready"]
    return "pending", {
        "condition": "MeshReady",
        "status": "False",
        "action": "Wait",
        "reason": "MembersPending: " + ", ".join(waiting),
    }


def _produced(member: ResolvedMember, instances: list[dict[str, Any]]) -> int:
    key = "numWritten" if member.kind is MemberKind.SOURCE else "numSuccessfullyProcessed"
    return sum(int(s.get(key, 0) or 0) for s in instances)


def _received(instances: list[dict[str, Any]]) -> int:
    return sum(int(s.get("numReceived", 0) or 0) for s in instances)


@dataclass
class MeshSampler:
    """The previous receive counts per internal topic, for rates between two status calls."""

    samples: dict[str, tuple[float, int]] = field(default_factory=dict)

    def rate(self, key: str, received: int, now: float | None = None) -> float | None:
        """Messages per second since the last sample of ``key`` (``None`` the first time)."""
        now = time.monotonic() if now is None else now
        last = self.samples.get(key)
        self.samples[key] = (now, received)
        if last is None or now <= last[0] or received < last[1]:
            return None
        return round((received - last[1]) / (now - last[0]), 1)


def mesh_status(
    fqmn: str,
    version: int,
    graph: MeshGraph,
    statuses: dict[str, list[dict[str, Any]]],
    sampler: MeshSampler,
) -> dict[str, Any]:
    """The mesh's status document: ``condition``, ``members`` and ``topics``."""
    members: list[dict[str, Any]] = []
    for m in graph.members:
        instances = statuses.get(m.name, [])
        cond = member_condition(m.kind, instances)
        members.append(
            {
                "name": m.name,
                "kind": m.kind.value,
                "fqfn": m.member.fqfn,
                "condition": cond,
                "numInstances": len(instances),
                "numRunning": sum(1 for s in instances if s.get("running")),
                "instances": [{"instanceId": i, "status": s} for i, s in enumerate(instances)],
                "upstream": graph.upstream(m.name),
                "downstream": graph.downstream(m.name),
            }
        )
    state, overall = mesh_condition(members)
    by_name = {m.name: m for m in graph.members}
    topics: list[dict[str, Any]] = []
    for topic in graph.internal_topics():
        producers = sorted({e.producer for e in graph.edges if e.topic == topic})
        consumers = sorted({e.consumer for e in graph.edges if e.topic == topic})
        produced = sum(_produced(by_name[p], statuses.get(p, [])) for p in producers)
        per_consumer: list[dict[str, Any]] = []
        for c in consumers:
            received = _received(statuses.get(c, []))
            per_consumer.append(
                {
                    "member": c,
                    "received": received,
                    "backlog": max(0, produced - received),
                    "rate": sampler.rate(f"{fqmn}|{topic}|{c}", received),
                }
            )
        topics.append(
            {
                "topic": topic,
                "producers": producers,
                "consumers": per_consumer,
                "written": produced,
                "backlog": max((c["backlog"] for c in per_consumer), default=0),
            }
        )
    worst = max((c for t in topics for c in t["consumers"]), key=lambda c: c["backlog"], default=None)
    return {
        "name": fqmn,
        "version": version,
        "state": state,
        "condition": overall,
        "members": members,
        "topics": topics,
        "bottleneck": worst["member"] if worst and worst["backlog"] else None,
    }
