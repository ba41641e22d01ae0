"""What one worker knows of its own instances, as dashboard rows, and the page's static files.

An instance row is the same for every kind of component (function, source, sink, each of them
alone or a mesh's member), so the page renders them all in one table.
"""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from engine.cluster.scheduler import split_instance_key

if TYPE_CHECKING:
    from engine.runtime.manager import InstanceSlot
    from engine.worker.worker import Worker

__all__ = ["PUBLIC_PATHS", "instance_state", "local_view", "static_file"]

# The page and its assets carry no cluster data and must load before the operator has pasted a
# token (a browser cannot send a bearer token on navigation); every data call under
# /dashboard/api/ is authenticated like the rest of the REST API.
PUBLIC_PATHS = ("/dashboard", "/dashboard/", "/dashboard/static/")

_STATIC = {
    "index.html": "text/html",
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
}

# How many of the latest exceptions (user and system together) a row carries.
_LATEST_ERRORS = 5


def static_file(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one of the page's files, or ``None`` for any other name."""
    content_type = _STATIC.get(name)
    if content_type is None:
        return None
    data = resources.files("engine.dashboard").joinpath("static").joinpath(name).read_bytes()
    return data, content_type


def instance_state(
    slot: InstanceSlot, max_backoff: float, now: float | None = None, stalled: str = ""
) -> tuple[str, str]:
    """The state an operator sees for one slot, and why.

    ``stopped`` (stopped by an admin), ``running`` (``stuck`` while its status says a call has
    run past the warning threshold: ``stalled``, e.g. "in process() for 12 s"), ``starting``
    (never failed yet),
    ``restarting`` (died or failed to start; the runtime will try again), ``crashed`` (died and
    not yet noticed, or failing so often that the runtime waits the longest back-off).
    """
    now = time.monotonic() if now is None else now
    if not slot.wanted:
        return "stopped", "stopped by an operator"
    inst = slot.instance
    if inst is not None:
        if inst.is_alive():
            return ("stuck", stalled) if stalled else ("running", "")
        return "crashed", inst.failure_text or "the instance exited"
    if not slot.failure:
        return "starting", ""
    wait = max(0.0, slot.next_start - now)
    if slot.backoff >= max_backoff:
        return "crashed", f"{slot.failure} (failing repeatedly; next try in {wait:.0f}s)"
    return "restarting", f"{slot.failure} (next try in {wait:.0f}s)"


def _latest_errors(status: dict[str, Any]) -> list[dict[str, Any]]:
    errors = [
        {"kind": kind, "text": e.get("exceptionString", ""), "timestampMs": e.get("timestampMs", 0)}
        for kind, field in (("user", "latestUserExceptions"), ("system", "latestSystemExceptions"))
        for e in status.get(field) or []
    ]
    errors.sort(key=lambda e: e["timestampMs"], reverse=True)
    return errors[:_LATEST_ERRORS]


def _row(
    worker: Worker, slot: InstanceSlot, status: dict[str, Any], snap: dict[str, Any] | None
) -> dict[str, Any]:
    fqfn, iid = split_instance_key(slot.key)
    state, reason = instance_state(slot, worker.runtime.MAX_BACKOFF, stalled=str(status.get("stalled", "")))
    return {
        "key": slot.key,
        "name": fqfn,
        "instanceId": iid,
        "workerId": worker.config.worker_id,
        "state": state,
        "reason": reason,
        "lastFailure": slot.last_failure,
        "numRestarts": slot.restarts,
        "received": status.get("numReceived", 0),
        "processed": status.get("numSuccessfullyProcessed", 0),
        "userExceptions": status.get("numUserExceptions", 0),
        "systemExceptions": status.get("numSystemExceptions", 0),
        "deadLettered": status.get("numDeadLettered", 0),
        "averageLatencyMs": status.get("averageLatency", 0.0),
        "lastInvocationMs": status.get("lastInvocationTime", 0),
        # Entries waiting on the input topic, when the instance can tell (one topic, no partitions).
        "backlog": sum(snap["input_backlog_entries"].values())
        if snap and snap.get("input_backlog_entries")
        else None,
        "inputLagMs": snap.get("input_lag_ms", 0.0) if snap else None,
        "latestErrors": _latest_errors(status),
    }


async def local_view(worker: Worker) -> dict[str, Any]:
    """This worker's part of the overview: its instances, and, while it leads, the drains.

    Status and snapshots are gathered off the loop (a child answers over gRPC).
    """
    leading = worker.election.is_leader
    slots = list(worker.runtime.slots.values())
    statuses = await asyncio.gather(*(worker.runtime.status_async(s.key) for s in slots))
    snaps = {id(inst): snap for inst, snap in await worker.runtime.snapshots()}
    return {
        "workerId": worker.config.worker_id,
        "url": worker.config.url,
        "isLeader": leading,
        "runtime": worker.runtime.runtime,
        "draining": sorted(worker.duties.draining) if leading else None,
        "instances": [
            _row(worker, s, st or {}, snaps.get(id(s.instance)) if s.instance is not None else None)
            for s, st in zip(slots, statuses, strict=True)
        ],
    }
