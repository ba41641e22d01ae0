"""The cluster as the dashboard shows it, gathered from every live worker in one answer."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from engine.cluster.scheduler import instance_key
from engine.dashboard.meshes import mesh_views
from engine.dashboard.rows import local_view
from engine.proto import Function_pb2 as pb

if TYPE_CHECKING:
    from engine.worker.worker import Worker

__all__ = ["LOCAL_PATH", "cluster_overview"]

log = logging.getLogger(__name__)

_KINDS = {pb.FunctionDetails.SOURCE: "source", pb.FunctionDetails.SINK: "sink"}

LOCAL_PATH = "/dashboard/api/local"

# A worker that does not answer within this time is shown as unreachable rather than holding up
# the whole page.
_REMOTE_TIMEOUT_S = 2.0


def _members(worker: Worker) -> list[dict[str, Any]]:
    if worker.election.is_leader:
        return [m.to_json() for m in worker.election.live_members()]
    return [dict(m) for m in worker.table.members]


async def _remote_view(
    worker: Worker, member: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any] | str:
    """A remote worker's local view, or the reason it could not be had."""
    assert worker.http is not None
    url = f"{str(member['url']).rstrip('/')}{LOCAL_PATH}"
    try:
        async with worker.http.get(url, headers=headers, timeout=_REMOTE_TIMEOUT_S) as resp:
            if resp.status != 200:
                return f"answered {resp.status}"
            body = await resp.json(content_type=None)
            return body if isinstance(body, dict) else "answered something other than a JSON object"
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.debug("dashboard: worker %s unreachable: %s", member.get("workerId"), exc)
        return f"unreachable: {type(exc).__name__}: {exc}".rstrip(": ")


def _placeholder(fqfn: str, iid: int, owner: str | None, why: str) -> dict[str, Any]:
    return {
        "key": instance_key(fqfn, iid),
        "name": fqfn,
        "instanceId": iid,
        "workerId": owner or "",
        "state": "pending" if owner else "unassigned",
        "reason": why,
        "lastFailure": "",
        "numRestarts": 0,
        "received": 0,
        "processed": 0,
        "userExceptions": 0,
        "systemExceptions": 0,
        "deadLettered": 0,
        "averageLatencyMs": 0.0,
        "lastInvocationMs": 0,
        "backlog": None,
        "latestErrors": [],
    }


async def cluster_overview(worker: Worker, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything the page shows: cluster, components and their instances, meshes.

    Parameters
    ----------
    worker
        The worker answering.
    headers
        Sent on the calls to the other workers (the caller's ``Authorization``), so each of
        them authorizes the request as it would the operator's own.
    """
    members = _members(worker)
    me = worker.config.worker_id
    others = [m for m in members if m.get("workerId") != me]
    answers = await asyncio.gather(*(_remote_view(worker, m, headers or {}) for m in others))
    views: dict[str, dict[str, Any]] = {me: await local_view(worker)}
    problems: dict[str, str] = {}
    for member, answer in zip(others, answers, strict=True):
        if isinstance(answer, str):
            problems[str(member["workerId"])] = answer
        else:
            views[str(member["workerId"])] = answer

    rows = {r["key"]: r for v in views.values() for r in v.get("instances", [])}
    draining = next((v["draining"] for v in views.values() if v.get("isLeader")), None)
    components = []
    for fqfn, md in sorted(worker.metadata.registry.items()):
        parallelism = max(1, md.functionDetails.parallelism)
        instances = []
        for iid in range(parallelism):
            key = instance_key(fqfn, iid)
            assignment = worker.table.assignments.get(key)
            owner = assignment.workerId if assignment is not None else None
            row = rows.get(key)
            if row is None:
                why = problems.get(owner or "", "") if owner else "waiting for the leader to place it"
                row = _placeholder(fqfn, iid, owner, why or f"assigned to {owner}, not started there yet")
            instances.append(row)
        tenant, namespace, name = fqfn.split("/", 2)
        components.append(
            {
                "kind": _KINDS.get(md.functionDetails.componentType, "function"),
                "name": fqfn,
                "tenant": tenant,
                "namespace": namespace,
                "shortName": name,
                "version": int(md.version),
                "parallelism": parallelism,
                "mesh": worker.metadata.registry.owner(fqfn),
                "instances": instances,
            }
        )

    leader = worker.table.leader or None
    leader_id = leader.get("workerId") if leader else None
    workers = []
    for m in members:
        wid = str(m["workerId"])
        view = views.get(wid)
        workers.append(
            {
                "workerId": wid,
                "url": m.get("url"),
                "isLeader": wid == leader_id,
                "draining": draining is not None and wid in draining,
                "reachable": view is not None,
                "problem": problems.get(wid, ""),
                "runtime": view.get("runtime") if view else None,
                "instanceCount": len(view.get("instances", [])) if view else None,
            }
        )
    return {
        "generatedAtMs": int(time.time() * 1000),
        "servedBy": me,
        "cluster": {
            "leader": leader_id,
            "leaderUrl": leader.get("url") if leader else None,
            "epoch": leader.get("epoch") if leader else None,
            "workers": workers,
        },
        "components": components,
        "meshes": mesh_views(worker, components),
    }
