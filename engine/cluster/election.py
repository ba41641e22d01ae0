"""Leader election on a Failover subscription, detected through heartbeats.

Every worker publishes a heartbeat (its id and REST URL) to the coordination topic
every ``interval`` seconds and consumes the topic on the Failover subscription
``participants``. The broker delivers the topic to its active consumer only, so the
worker that keeps receiving fresh heartbeats is the leader, and the heartbeats it
receives are the membership. The client does not report active-consumer changes; a
worker that stops receiving fresh heartbeats for ``timeout`` seconds steps down.

Heartbeats are consumed on a dedicated thread and handed to the event loop in
batches; no election logic runs on the client's threads.

The election is a state machine (:class:`ElectionState`) moved by one method,
:meth:`LeaderElection._move`: FOLLOWER → TAKING_OFFICE on a fresh heartbeat, →
LEADER once ``on_leadership(True)`` succeeded (back to FOLLOWER if it failed; the
next fresh heartbeat tries again), LEADER → STEPPING_DOWN when heartbeats stop, →
FOLLOWER after ``on_leadership(False)``. :attr:`LeaderElection.is_leader` is true in
LEADER only.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pulsar

from engine.aio import TaskSupervisor
from engine.broker.capabilities import BrokerCapabilities
from engine.cluster.topics import ClusterTopics

__all__ = ["ElectionState", "LeaderElection", "WorkerInfo"]

log = logging.getLogger(__name__)


class ElectionState(enum.Enum):
    """Where this worker stands in the election."""

    FOLLOWER = "follower"
    TAKING_OFFICE = "taking office"
    LEADER = "leader"
    STEPPING_DOWN = "stepping down"


#: The moves the election makes; anything else is a bug.
_MOVES = {
    ElectionState.FOLLOWER: {ElectionState.TAKING_OFFICE},
    ElectionState.TAKING_OFFICE: {ElectionState.LEADER, ElectionState.FOLLOWER},
    ElectionState.LEADER: {ElectionState.STEPPING_DOWN},
    ElectionState.STEPPING_DOWN: {ElectionState.FOLLOWER},
}


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
        capabilities: BrokerCapabilities | None = None,
    ) -> None:
        self.client = client
        self.topics = topics
        self.me = me
        self._on_leadership = on_leadership
        self._on_membership = on_membership
        self.interval = interval
        self.timeout = timeout
        self.capabilities = capabilities or BrokerCapabilities.apache()
        self.state = ElectionState.FOLLOWER
        self.members: dict[str, tuple[WorkerInfo, float]] = {}
        self._last_fresh = 0.0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks = TaskSupervisor(f"{me.worker_id} election")
        self._election_consumer: Any = None
        self._heartbeat_producer: Any = None
        self._heartbeat_reader: Any = None
        self._threads: list[threading.Thread] = []
        self._transition = asyncio.Lock()
        #: Last time each worker's heartbeat was seen by this worker's reader (monotonic).
        self.seen: dict[str, float] = {}
        self._started = time.monotonic()
        self._announced = announced or (lambda: {})
        #: Which subscription of the coordination topic elects: 0 is ``participants``.
        self.generation = int(self._announced().get("generation", 0))

    @property
    def is_leader(self) -> bool:
        """True once taking office has succeeded, until stepping down begins."""
        return self.state is ElectionState.LEADER

    def _move(self, to: ElectionState, why: str) -> None:
        """The one place the state changes; each move is logged at debug level."""
        if to not in _MOVES[self.state]:
            raise RuntimeError(
                f"election of {self.me.worker_id}: no move from {self.state.name} to {to.name}"
            )
        log.debug("%s election: %s -> %s (%s)", self.me.worker_id, self.state.name, to.name, why)
        self.state = to

    async def start(self) -> None:
        """Join the subscription and start heartbeating."""
        self._loop = asyncio.get_running_loop()
        self._heartbeat_producer = await asyncio.to_thread(
            self.client.create_producer,
            self.topics.coordinate,
            batching_enabled=False,
            block_if_queue_full=True,
        )
        self._election_consumer = await self._subscribe()
        self._heartbeat_reader = await asyncio.to_thread(
            self.client.create_reader, self.topics.coordinate, pulsar.MessageId.latest
        )
        for target, name in (
            (self._receive_loop, "election"),
            (self._heartbeat_loop, "heartbeat"),
            (self._observe_loop, "heartbeat-reader"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._tasks.keep(self._watch, "election watch")

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
        old = self._election_consumer
        moving = generation is not None and generation != self.generation
        if moving:
            assert generation is not None
            self.generation = generation
        self._election_consumer = await self._subscribe()
        try:
            await asyncio.to_thread(old.unsubscribe if moving else old.close)
        except pulsar.PulsarException as exc:
            log.info(
                "%s: leaving the old election subscription failed (%s); closing it", self.me.worker_id, exc
            )
            try:
                await asyncio.to_thread(old.close)
            except pulsar.PulsarException as again:
                log.warning("%s: closing the old election consumer failed: %s", self.me.worker_id, again)

    async def stop(self) -> None:
        """Leave: stop heartbeating and close the consumer (the broker picks another leader)."""
        self._stop.set()
        await self._tasks.close()
        # The threads wake within their 200 ms receive timeouts; joining them blocks.
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 2)
            if thread.is_alive():
                log.warning("%s: election thread %s did not end within 2 s", self.me.worker_id, thread.name)
        for name, handle in (
            ("election consumer", self._election_consumer),
            ("heartbeat producer", self._heartbeat_producer),
            ("heartbeat reader", self._heartbeat_reader),
        ):
            if handle is not None:
                try:
                    await asyncio.to_thread(handle.close)
                except pulsar.PulsarException as exc:  # already closed, or the broker is gone
                    log.debug("%s: closing the %s: %s", self.me.worker_id, name, exc)

    def _heartbeat_loop(self) -> None:
        # A thread of its own: heartbeats must never queue behind other blocking work.
        payload = self.me.to_json()
        failing = False
        while not self._stop.is_set():
            beat = orjson.dumps({**payload, "ts": time.time()})
            try:
                try:
                    self._heartbeat_producer.send(beat)
                except pulsar.AlreadyClosed:  # closed by the broker for good: open another
                    self._heartbeat_producer = self.client.create_producer(
                        self.topics.coordinate, batching_enabled=False, block_if_queue_full=True
                    )
                    self._heartbeat_producer.send(beat)
                log.debug("heartbeat sent")
                if failing:
                    log.info("%s: heartbeats go out again", self.me.worker_id)
                    failing = False
            except Exception as exc:  # the broker is away or the client closing: keep beating
                if self._stop.is_set():
                    return
                if not failing:  # once per streak, not per beat
                    log.warning("%s: sending a heartbeat failed: %s", self.me.worker_id, exc)
                failing = True
            self._stop.wait(self.interval)

    def _observe_loop(self) -> None:
        # Every worker reads all heartbeats (a reader, not the election subscription): the
        # membership view is the same everywhere, and each worker knows whether the
        # announced leader is alive.
        failing = False
        while not self._stop.is_set():
            try:
                msg = self._heartbeat_reader.read_next(200)
            except pulsar.Timeout:
                continue
            except Exception as exc:  # the broker is away or the client closing: retry
                if self._stop.is_set():
                    return
                if not failing:  # once per streak, not per retry
                    log.warning("%s: reading heartbeats failed: %s; retrying", self.me.worker_id, exc)
                failing = True
                self._stop.wait(0.2)
                continue
            if failing:
                log.info("%s: reading heartbeats again", self.me.worker_id)
                failing = False
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
        failing = False
        while not self._stop.is_set():
            consumer = self._election_consumer
            try:
                msg = consumer.receive(200)
            except pulsar.Timeout:
                continue
            except Exception as exc:  # a consumer being replaced by _rejoin, or the broker away
                if self._stop.is_set():
                    return
                if not failing:  # once per streak, not per retry
                    log.warning(
                        "%s: receiving on the election subscription failed: %s", self.me.worker_id, exc
                    )
                failing = True
                self._stop.wait(0.2)
                continue
            if failing:
                log.info("%s: receiving on the election subscription again", self.me.worker_id)
                failing = False
            log.debug("heartbeat received from %s", msg.data()[:40])
            beats = [msg]
            try:
                consumer.acknowledge(msg)
            except pulsar.PulsarException as exc:
                # Heartbeats are only read for freshness: an unacked one is harmless.
                log.debug("%s: acknowledging a heartbeat failed: %s", self.me.worker_id, exc)
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._on_beats, [b.data() for b in beats])
            except RuntimeError:  # loop closed during shutdown
                return

    def _on_beats(self, payloads: list[bytes]) -> None:
        # Fresh heartbeats on the election subscription mean the broker made us active.
        now = time.time()
        fresh = False
        for raw in payloads:
            try:
                beat = orjson.loads(raw)
            except orjson.JSONDecodeError:
                log.debug("%s: ignoring a heartbeat that is not JSON: %r", self.me.worker_id, raw[:80])
                continue
            if now - float(beat.get("ts", 0)) <= self.timeout:
                self._last_fresh = time.monotonic()
                fresh = True
        if fresh and self.state is ElectionState.FOLLOWER:
            self._schedule_transition(True)

    def live_members(self) -> list[WorkerInfo]:
        """Workers whose heartbeats were read within ``timeout``."""
        return sorted((info for info, _ in self.members.values()), key=lambda i: i.worker_id)

    async def _watch(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.interval / 2)
            await self._tick(time.monotonic())

    async def _tick(self, now: float) -> None:
        """One round of the watch: expire members, step down when stale, mend a stuck election."""
        gone = [w for w, (_, seen) in self.members.items() if now - seen > self.timeout]
        for w in gone:
            del self.members[w]
        if gone:
            self._on_membership(self.live_members())
        if self.is_leader and now - self._last_fresh > self.timeout:
            self._schedule_transition(False)
        if self.state is ElectionState.FOLLOWER:
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
        # Following the announced generation is the protocol (every worker elects on the
        # same subscription); moving on silence is the workaround for a stalling broker.
        if not self.capabilities.failover_may_stall:
            return
        leader = announced.get("workerId")
        if not leader or leader == self.me.worker_id or now - self._started < 2 * self.timeout:
            return
        last = self.seen.get(leader, self._started)
        if now - last > self.timeout and now - self._last_fresh > self.timeout:
            self.capabilities.workaround(
                "election-generation-rejoin",
                "a Failover subscription may deliver to no one after its active consumer died",
            )
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
        self._tasks.spawn(self._take_office() if leader else self._step_down(), "leadership change")

    async def _take_office(self) -> None:
        async with self._transition:
            if self.state is not ElectionState.FOLLOWER:
                return
            self._move(ElectionState.TAKING_OFFICE, "fresh heartbeats on the election subscription")
            try:
                await self._on_leadership(True)
            except asyncio.CancelledError:
                self._move(ElectionState.FOLLOWER, "cancelled while taking office")
                raise
            except Exception as exc:
                log.error(
                    "%s: taking office failed (%s: %s); following, and trying again on the next heartbeat",
                    self.me.worker_id,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                self._move(ElectionState.FOLLOWER, "taking office failed")
                return
            self._move(ElectionState.LEADER, "took office")
            log.info("%s took leadership", self.me.worker_id)

    async def _step_down(self) -> None:
        async with self._transition:
            if self.state is not ElectionState.LEADER:
                return
            self._move(ElectionState.STEPPING_DOWN, f"no fresh heartbeat for {self.timeout:.1f} s")
            log.info("%s lost leadership", self.me.worker_id)
            try:
                await self._on_leadership(False)
            except Exception as exc:
                log.error(
                    "%s: stepping down failed (%s: %s); following anyway",
                    self.me.worker_id,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
            finally:
                self._move(ElectionState.FOLLOWER, "stepped down")
