"""Tenants (their admin roles) and namespace permissions, kept for the whole cluster.

Every change is a keyed JSON record on ``persistent://<functions namespace>/security``:
``tenant/<name>`` holds a tenant's info, ``permission/<tenant>/<namespace>/<role>`` the
actions granted to a role; an empty value deletes. Every worker reads the topic at start
and then follows it, so all agree; a writer waits until its own record is applied, so a
change is visible on that worker as soon as the call returns. One record per grant keeps
concurrent grants on one namespace from overwriting each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pulsar

from engine.cluster.topic_io import TopicTailer, TopicWriter, position_key, read_range, topic_end

__all__ = ["AUTH_ACTIONS", "TenantInfo", "TenantStore", "security_topic"]

log = logging.getLogger(__name__)

#: Pulsar's AuthAction names; ``functions`` is the one the worker checks.
AUTH_ACTIONS = frozenset({"produce", "consume", "functions", "sources", "sinks", "packages"})


def security_topic(namespace: str) -> str:
    """The topic of tenant and permission records in the worker's functions namespace."""
    return f"persistent://{namespace}/security"


@dataclass
class TenantInfo:
    """A tenant as Pulsar's admin API shows it."""

    admin_roles: list[str] = field(default_factory=list)
    allowed_clusters: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"adminRoles": sorted(self.admin_roles), "allowedClusters": sorted(self.allowed_clusters)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TenantInfo:
        return cls(list(data.get("adminRoles") or []), list(data.get("allowedClusters") or []))


class TenantStore:
    """The cluster's tenants and namespace grants, followed from the security topic."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantInfo] = {}
        self.permissions: dict[str, dict[str, set[str]]] = {}
        self._client: pulsar.Client | None = None
        self._topic = ""
        self._tailer: TopicTailer | None = None
        self._writer: TopicWriter | None = None
        self.ready = False

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, client: pulsar.Client, namespace: str) -> None:
        """Load every record so far, then follow the topic."""
        self._client = client
        self._topic = security_topic(namespace)
        last = await asyncio.to_thread(self._load)
        self._writer = await asyncio.to_thread(TopicWriter, client, self._topic)
        self._tailer = TopicTailer(client, self._topic, last, asyncio.get_running_loop(), self._on_batch)
        self._tailer.start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._tailer is not None:
            await asyncio.to_thread(self._tailer.stop)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)

    def _load(self) -> Any:
        assert self._client is not None
        end = topic_end(self._client, self._topic)
        msgs, last = read_range(self._client, self._topic, pulsar.MessageId.earliest, end)
        self._on_batch(msgs)
        return last

    def _on_batch(self, msgs: list[Any]) -> None:
        for msg in msgs:
            self._apply(msg.partition_key(), bytes(msg.data()))

    def _apply(self, key: str, value: bytes) -> None:
        try:
            data = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            log.error("security record %r is not JSON; skipped", key)
            return
        kind, _, rest = key.partition("/")
        if kind == "tenant":
            if data is None:
                self.tenants.pop(rest, None)
            elif isinstance(data, dict):
                self.tenants[rest] = TenantInfo.from_json(data)
        elif kind == "permission":
            ns, _, role = rest.rpartition("/")
            grants = self.permissions.setdefault(ns, {})
            if data:
                grants[role] = {str(a) for a in data}
            else:
                grants.pop(role, None)
        else:
            log.error("security record %r has an unknown kind; skipped", key)

    async def _write(self, key: str, value: Any) -> None:
        assert self._writer is not None and self._tailer is not None
        msg_id = await self._writer.write(key, b"" if value is None else orjson.dumps(value), {})
        target = position_key(msg_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            seen = self._tailer.last_position
            if seen is not None and seen >= target:
                return
            await asyncio.sleep(0.01)  # read-your-writes: wait for the tailer to apply it
        log.warning("security record %r written but not yet read back", key)

    # -- tenants ---------------------------------------------------------------------------
    async def put_tenant(self, name: str, info: TenantInfo) -> None:
        await self._write(f"tenant/{name}", info.to_json())

    async def delete_tenant(self, name: str) -> None:
        await self._write(f"tenant/{name}", None)
        for ns in [ns for ns in self.permissions if ns.split("/", 1)[0] == name]:
            for role in list(self.permissions.get(ns, {})):
                await self._write(f"permission/{ns}/{role}", None)

    # -- namespace permissions ----------------------------------------------------------------
    async def grant(self, namespace: str, role: str, actions: set[str]) -> None:
        await self._write(f"permission/{namespace}/{role}", sorted(actions))

    async def revoke(self, namespace: str, role: str) -> None:
        await self._write(f"permission/{namespace}/{role}", None)

    def grants(self, namespace: str) -> dict[str, list[str]]:
        return {role: sorted(actions) for role, actions in self.permissions.get(namespace, {}).items()}
