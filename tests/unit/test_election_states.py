"""The election's state machine, driven by heartbeat batches and watch rounds (no broker)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import orjson
import pytest

from engine.broker.capabilities import BrokerCapabilities
from engine.cluster.election import ElectionState, LeaderElection, WorkerInfo
from engine.cluster.topics import ClusterTopics

ME = WorkerInfo("w1", "http://127.0.0.1:1")


class Office:
    """``on_leadership`` that records each call, the state seen during it, and can fail."""

    def __init__(self, election: list[LeaderElection], fail_times: int = 0) -> None:
        self._election = election
        self.fail_times = fail_times
        self.calls: list[tuple[bool, ElectionState, bool]] = []

    async def __call__(self, leader: bool) -> None:
        e = self._election[0]
        self.calls.append((leader, e.state, e.is_leader))
        await asyncio.sleep(0)
        if leader and self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("the assignments topic is away")


def make(
    fail_times: int = 0, capabilities: BrokerCapabilities | None = None
) -> tuple[LeaderElection, Office]:
    holder: list[LeaderElection] = []
    office = Office(holder, fail_times)
    election = LeaderElection(
        cast(Any, None),  # no broker: nothing here reaches the client
        ClusterTopics("public/functions"),
        ME,
        office,
        lambda members: None,
        interval=0.1,
        timeout=1.0,
        capabilities=capabilities,
    )
    holder.append(election)
    return election, office


def beat(age: float = 0.0) -> bytes:
    return orjson.dumps({**ME.to_json(), "ts": time.time() - age})


async def settle(election: LeaderElection) -> None:
    """Wait until every transition the election has started is done."""
    while election._tasks._tasks:
        await asyncio.wait(list(election._tasks._tasks))


def test_leader_only_after_taking_office_succeeded(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        election, office = make()
        assert election.state is ElectionState.FOLLOWER and not election.is_leader
        with caplog.at_level(logging.DEBUG, logger="engine.cluster.election"):
            election._on_beats([beat()])
            await settle(election)
        # While the worker took office it was not yet the leader.
        assert office.calls == [(True, ElectionState.TAKING_OFFICE, False)]
        assert election.state is ElectionState.LEADER and election.is_leader
        moves = [r.getMessage() for r in caplog.records if "election:" in r.getMessage()]
        assert any("FOLLOWER -> TAKING_OFFICE" in m for m in moves), moves
        assert any("TAKING_OFFICE -> LEADER" in m for m in moves), moves

    asyncio.run(run())


def test_failed_taking_office_returns_to_follower_and_retries_on_the_next_heartbeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        election, office = make(fail_times=1)
        with caplog.at_level(logging.ERROR, logger="engine.cluster.election"):
            election._on_beats([beat()])
            await settle(election)
        assert election.state is ElectionState.FOLLOWER and not election.is_leader
        assert any("taking office failed" in r.getMessage() for r in caplog.records)
        election._on_beats([beat()])
        await settle(election)
        assert election.is_leader
        assert [c[0] for c in office.calls] == [True, True]

    asyncio.run(run())


def test_stale_heartbeats_elect_no_one() -> None:
    async def run() -> None:
        election, office = make()
        election._on_beats([beat(age=5.0), b"not json"])
        await settle(election)
        assert election.state is ElectionState.FOLLOWER and office.calls == []

    asyncio.run(run())


def test_leader_steps_down_when_heartbeats_stop() -> None:
    async def run() -> None:
        election, office = make()
        election._on_beats([beat()])
        await settle(election)
        assert election.is_leader
        await election._tick(time.monotonic())  # fresh: nothing happens
        await settle(election)
        assert election.is_leader
        await election._tick(time.monotonic() + 2 * election.timeout)
        await settle(election)
        assert office.calls[-1] == (False, ElectionState.STEPPING_DOWN, False)
        assert election.state is ElectionState.FOLLOWER
        # More heartbeats later: it takes office again.
        election._on_beats([beat()])
        await settle(election)
        assert election.is_leader and len(office.calls) == 3

    asyncio.run(run())


def test_only_the_listed_moves_are_made() -> None:
    election, _ = make()
    with pytest.raises(RuntimeError, match="no move from FOLLOWER to LEADER"):
        election._move(ElectionState.LEADER, "skipping taking office")
    election._move(ElectionState.TAKING_OFFICE, "test")
    with pytest.raises(RuntimeError, match="no move from TAKING_OFFICE to STEPPING_DOWN"):
        election._move(ElectionState.STEPPING_DOWN, "test")


class _Rejoins:
    def __init__(self) -> None:
        self.targets: list[int | None] = []

    async def __call__(self, generation: int | None = None) -> None:
        self.targets.append(generation)


@pytest.mark.parametrize(("kind", "moves"), [("apache", False), ("pulsar-lite", True)])
def test_generation_move_on_a_silent_leader_only_where_failover_may_stall(kind: str, moves: bool) -> None:
    async def run() -> None:
        election, _ = make(capabilities=BrokerCapabilities.for_kind(kind))
        election._announced = lambda: {"workerId": "w9", "epoch": 7, "generation": 0}
        rejoins = _Rejoins()
        election._rejoin = rejoins  # type: ignore[method-assign]
        later = time.monotonic() + 10 * election.timeout  # w9 silent since start
        await election._check_leader(later)
        assert rejoins.targets == ([7] if moves else [])

    asyncio.run(run())


def test_the_announced_generation_is_followed_on_any_broker() -> None:
    async def run() -> None:
        election, _ = make(capabilities=BrokerCapabilities.apache())
        election._announced = lambda: {"workerId": "w9", "generation": 3}
        rejoins = _Rejoins()
        election._rejoin = rejoins  # type: ignore[method-assign]
        await election._check_leader(time.monotonic())
        assert rejoins.targets == [3]

    asyncio.run(run())
