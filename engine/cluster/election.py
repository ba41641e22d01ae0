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
        announced: Callable[[], dict[str, Any]] | None = None,
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
        #: Last time each worker's heartbeat was seen by this worker's reader (monotonic).
        self.seen: dict[str, float] = {}
        self._started = time.monotonic()
        self._announced = announced or (lambda: {})
        #: Which subscription of the coordination topic elects: 0 is ``participants``.
        self.generation = int(self._announced().get("generation", 0))

    async def start(self) -> None:
        """Join the subscription and start heartbeating."""
        self._loop = asyncio.get_running_loop()
        self._producer = await asyncio.to_thread(
            self.client.create_producer,
            self.topics.coordinate,
            batching_enabled=False,
            block_if_queue_full=True,
        )
        self._consumer = await self._subscribe()
        self._thread = threading.Thread(target=self._receive_loop, name="election", daemon=True)
        self._thread.start()
        self._beat_thread = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._beat_thread.start()
        self._reader = await asyncio.to_thread(
            self.client.create_reader, self.topics.coordinate, pulsar.MessageId.latest
        )
        self._watch_thread = threading.Thread(target=self._observe_loop, name="heartbeat-reader", daemon=True)
        self._watch_thread.start()
        self._tasks = [asyncio.create_task(self._watch())]

    async def _subscribe(self) -> Any:
        for attempt in range(3):
            try:
                return await asyncio.to_thread(
                    self.client.subscribe,
                    self.topics.coordinate,
                    self.subscription,
                    consumer_type=pulsar.ConsumerType.Failover,
                    consumer_name=self.me.worker_id,
                    properties={"id": self.me.worker_id, "url": self.me.url},
                )
            except pulsar.PulsarException as exc:
                # A retry comes with a new consumer id (see broker.client.spread_consumer_ids).
                if attempt == 2:
                    raise
                log.warning("joining the election failed (%s); retrying", exc)
        raise AssertionError("unreachable")

    @property
    def subscription(self) -> str:
        """The Failover subscription of the current generation."""
        return "participants" if self.generation == 0 else f"participants-g{self.generation}"

    async def _rejoin(self, generation: int | None = None) -> None:
        """Join again (a new generation's subscription when given), leaving the old one."""
        old = self._consumer
        moving = generation is not None and generation != self.generation
        if moving:
            assert generation is not None
            self.generation = generation
        self._consumer = await self._subscribe()
        try:
            await asyncio.to_thread(old.unsubscribe if moving else old.close)
        except Exception:
            try:
                await asyncio.to_thread(old.close)
            except Exception:
                pass

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
        threads = (self._thread, getattr(self, "_beat_thread", None), getattr(self, "_watch_thread", None))
        for thread in threads:
            if thread is not None:
                thread.join(2)
        for handle in (self._consumer, self._producer, getattr(self, "_reader", None)):
            if handle is not None:
                try:
                    await asyncio.to_thread(handle.close)
                except Exception:
                    pass

    def _heartbeat_loop(self) -> None:
        # A thread of its own: heartbeats must never queue behind other blocking work.
        payload = self.me.to_json()
        while not self._stop.is_set():
            beat = orjson.dumps({**payload, "ts": time.time()})
            try:
                self._producer.send(beat)
                log.debug("heartbeat sent")
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("heartbeat failed: %s", exc)
            self._stop.wait(self.interval)

    def _observe_loop(self) -> None:
        # Every worker reads all heartbeats (a reader, not the election subscription): the
        # membership view is the same everywhere, and each worker knows whether the
        # announced leader is alive.
        while not self._stop.is_set():
            try:
                msg = self._reader.read_next(200)
            except pulsar.Timeout:
                continue
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.2)
                continue
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._on_observed, msg.data())
            except RuntimeError:  # loop closed during shutdown
                return

    def _on_observed(self, raw: bytes) -> None:
        try:
            beat = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if time.time() - float(beat.get("ts", 0)) > self.timeout:
            return
        info = WorkerInfo(beat["workerId"], beat["url"])
        now = time.monotonic()
        self.seen[info.worker_id] = now
        known = info.worker_id in self.members
        self.members[info.worker_id] = (info, now)
        if not known:
            self._on_membership(self.live_members())

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            consumer = self._consumer
            try:
                msg = consumer.receive(200)
            except pulsar.Timeout:
                continue
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.2)
                continue
            log.debug("heartbeat received from %s", msg.data()[:40])
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
        # Fresh heartbeats on the election subscription mean the broker made us active.
        now = time.time()
        for raw in payloads:
            try:
                beat = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if now - float(beat.get("ts", 0)) <= self.timeout:
                self._last_fresh = time.monotonic()
        if not self.is_leader and self._last_fresh:
            self._schedule_transition(True)

    def live_members(self) -> list[WorkerInfo]:
        """Workers whose heartbeats were read within ``timeout``."""
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
            if not self.is_leader:
                await self._check_leader(now)

    async def _check_leader(self, now: float) -> None:
        # The broker should hand the subscription to another consumer when the active one
        # goes away; pulsar-lite sometimes leaves the subscription stuck instead. When the
        # announced leader's heartbeats stop, every survivor moves to the subscription
        # named after that leader's epoch (the same name for all of them), where the broker
        # elects afresh; the new leader announces the generation for later joiners.
        announced = self._announced()
        announced_generation = int(announced.get("generation", 0))
        if announced_generation > self.generation:
            await self._rejoin(announced_generation)
            return
        leader = announced.get("workerId")
        if not leader or leader == self.me.worker_id or now - self._started < 2 * self.timeout:
            return
        last = self.seen.get(leader, self._started)
        if now - last > self.timeout and now - self._last_fresh > self.timeout:
            target = max(self.generation + 1, int(announced.get("epoch", 0)))
            log.warning(
                "%s: no heartbeat from leader %s for %.1f s; electing on generation %d",
                self.me.worker_id,
                leader,
                now - last,
                target,
            )
            self.seen[leader] = now  # one move per silence
            await self._rejoin(target)

    def _schedule_transition(self, leader: bool) -> None:
        async def run() -> None:
            async with self._transition:
                if self.is_leader == leader:
                    return
                self.is_leader = leader
                log.info("%s %s leadership", self.me.worker_id, "took" if leader else "lost")
                await self._on_leadership(leader)

        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(run()))
