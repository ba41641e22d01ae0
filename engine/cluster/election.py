"""Leader election on a Failover subscription, detected through heartbeats.

Every worker publishes a heartbeat (its id and REST URL) to the coordination topic
every ``interval`` seconds and consumes the topic on the Failover subscription
``participants``. The broker delivers the topic to its active consumer only, so the
worker that keeps receiving fresh heartbeats is the leader, and the heartbeats it
receives are the membership. The client does not report active-consumer changes; a
worker that stops receiving fresh heartbeats for ``timeout`` seconds steps down.

Heartbeats are consumed on a dedicated thread and handed to the event loop in
batches; no election logic runs on the client's threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pulsar

from engine.cluster.topics import ClusterTopics

__all__ = ["LeaderElection", "WorkerInfo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerInfo:
    """A cluster member: id and the base URL of its REST API."""

    worker_id: str
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"workerId": self.worker_id, "url": self.url}


class LeaderElection:
    """Heartbeats out, heartbeats in, and the leader/membership view that follows."""

    def __init__(
        self,
        client: pulsar.Client,
        topics: ClusterTopics,
        me: WorkerInfo,
        on_leadership: Callable[[bool], Awaitable[None]],
        on_membership: Callable[[list[WorkerInfo]], None],
        interval: float = 0.5,
        timeout: float = 2.0,
    ) -> None:
        self.client = client
        self.topics = topics
        self.me = me
        self._on_leadership = on_leadership
        self._on_membership = on_membership
        self.interval = interval
        self.timeout = timeout
        self.is_leader = False
        self.members: dict[str, tuple[WorkerInfo, float]] = {}
        self._last_fresh = 0.0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: Any = None
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._transition = asyncio.Lock()

    async def start(self) -> None:
        """Join the subscription and start heartbeating."""
        self._loop = asyncio.get_running_loop()
        self._producer = await asyncio.to_thread(
            self.client.create_producer,
            self.topics.coordinate,
            batching_enabled=False,
            block_if_queue_full=True,
        )
        for attempt in range(3):
            try:
                self._consumer = await asyncio.to_thread(
                    self.client.subscribe,
                    self.topics.coordinate,
                    "participants",
                    consumer_type=pulsar.ConsumerType.Failover,
                    consumer_name=self.me.worker_id,
                    properties={"id": self.me.worker_id, "url": self.me.url},
                )
                break
            except pulsar.PulsarException as exc:
                # A retry comes with a new consumer id (see broker.client.spread_consumer_ids).
                if attempt == 2:
                    raise
                log.warning("joining the election failed (%s); retrying", exc)
        self._thread = threading.Thread(target=self._receive_loop, name="election", daemon=True)
        self._thread.start()
        self._tasks = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._watch())]

    async def stop(self) -> None:
        """Leave: stop heartbeating and close the consumer (the broker picks another leader)."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._thread is not None:
            self._thread.join(2)
        for handle in (self._consumer, self._producer):
            if handle is not None:
                try:
                    await asyncio.to_thread(handle.close)
                except Exception:
                    pass

    async def _heartbeat(self) -> None:
        payload = self.me.to_json()
        while not self._stop.is_set():
            beat = orjson.dumps({**payload, "ts": time.time()})
            try:
                await asyncio.to_thread(self._producer.send, beat)
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self.interval)

    def _receive_loop(self) -> None:
        consumer = self._consumer
        while not self._stop.is_set():
            try:
                msg = consumer.receive(200)
            except pulsar.Timeout:
                continue
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.2)
                continue
            beats = [msg]
            try:
                consumer.acknowledge(msg)
            except Exception:
                pass
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._on_beats, [b.data() for b in beats])
            except RuntimeError:  # loop closed during shutdown
                return

    def _on_beats(self, payloads: list[bytes]) -> None:
        now = time.time()
        changed = False
        for raw in payloads:
            try:
                beat = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if now - float(beat.get("ts", 0)) > self.timeout:
                continue  # redelivered from before a failover: says nothing about now
            self._last_fresh = time.monotonic()
            info = WorkerInfo(beat["workerId"], beat["url"])
            if info.worker_id not in self.members:
                changed = True
            self.members[info.worker_id] = (info, time.monotonic())
        if changed:
            self._on_membership(self.live_members())
        if not self.is_leader and self._last_fresh:
            self._schedule_transition(True)

    def live_members(self) -> list[WorkerInfo]:
        """Workers heard from within ``timeout`` (as seen by the leader)."""
        return sorted((info for info, _ in self.members.values()), key=lambda i: i.worker_id)

    async def _watch(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.interval / 2)
            now = time.monotonic()
            gone = [w for w, (_, seen) in self.members.items() if now - seen > self.timeout]
            for w in gone:
                del self.members[w]
            if gone:
                self._on_membership(self.live_members())
            if self.is_leader and now - self._last_fresh > self.timeout:
                self._schedule_transition(False)

    def _schedule_transition(self, leader: bool) -> None:
        async def run() -> None:
            async with self._transition:
                if self.is_leader == leader:
                    return
                self.is_leader = leader
                if not leader:
                    self.members.clear()
                log.info("%s %s leadership", self.me.worker_id, "took" if leader else "lost")
                await self._on_leadership(leader)

        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(run()))
