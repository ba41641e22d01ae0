"""A mesh change reaches the leader: written directly when this worker leads, else forwarded to it.

As for functions (:meth:`engine.worker.worker.Worker.submit`), a change waits up to
``LEADER_WAIT_S`` for a reachable leader, and the worker that took the request waits
until it has applied the record itself (read-your-writes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from engine.cluster.registry import StaleVersion
from engine.mesh.record import MeshChange, MeshRecord, mesh_key
from engine.mesh.versions import MemberConflict

if TYPE_CHECKING:
    from engine.worker.worker import Worker

__all__ = ["LeaderRejected", "submit_mesh"]

log = logging.getLogger(__name__)


class LeaderRejected(Exception):
    """The leader refused a forwarded change; ``status`` and the message are its answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def submit_mesh(
    worker: Worker, fqmn: str, change: MeshChange | None, expected: int | None
) -> MeshRecord:
    """Record ``change`` (``None`` deletes the mesh); raises StaleVersion, MemberConflict or NotLeader."""
    key = mesh_key(fqmn)
    if worker.election.is_leader:
        record = await worker.metadata.propose_mesh(key, change, expected, worker.duties.epoch)
    else:
        record = await _forward(worker, fqmn, change, expected)
    deadline = time.monotonic() + 10
    while worker.metadata.registry.current_version(key) < record.version and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # read-your-writes on this worker
    return record


async def _forward(worker: Worker, fqmn: str, change: MeshChange | None, expected: int | None) -> MeshRecord:
    from engine.worker.worker import LEADER_WAIT_S, NotLeader

    body: dict[str, Any] = {"change": change.to_json() if change else None, "expectedVersion": expected}
    deadline = time.monotonic() + LEADER_WAIT_S
    while time.monotonic() < deadline:
        url = worker.leader_url()
        if url and url != worker.config.url:
            assert worker.http is not None
            try:
                async with worker.http.put(f"{url}/admin/v3/meshes/leader/{fqmn}", json=body) as resp:
                    data = await resp.json(content_type=None)
                    reason = str(data.get("reason", data)) if isinstance(data, dict) else str(data)
                    if resp.status == 200:
                        return MeshRecord.decode(orjson.dumps(data["record"]))
                    if resp.status == 409:
                        raise (MemberConflict if data.get("conflict") == "member" else StaleVersion)(reason)
                    if resp.status != 503:
                        raise LeaderRejected(resp.status, reason)
            except aiohttp.ClientError as exc:
                log.debug("forwarding mesh %s to the leader at %s failed: %s; retrying", fqmn, url, exc)
        elif worker.election.is_leader:
            return await worker.metadata.propose_mesh(mesh_key(fqmn), change, expected, worker.duties.epoch)
        await asyncio.sleep(0.1)
    raise NotLeader("no leader is reachable; try again shortly")
