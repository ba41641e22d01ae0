"""Supervised background tasks and the loop-lag probe (pure asyncio, no broker)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from engine.aio import LoopLagProbe, TaskSupervisor


def test_a_failing_task_is_logged_with_what_it_was_doing(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        sup = TaskSupervisor("w1")

        async def boom() -> None:
            raise ValueError("bad record")

        with caplog.at_level(logging.ERROR, logger="engine.aio.supervisor"):
            task = sup.spawn(boom(), "publishing the membership")
            await asyncio.wait([task])
            await asyncio.sleep(0)
        assert sup.failures == 1 and len(sup) == 0
        assert any(
            "w1: publishing the membership failed: ValueError: bad record" in r.getMessage()
            for r in caplog.records
        )

    asyncio.run(run())


def test_a_failing_duty_is_restarted_with_backoff() -> None:
    async def run() -> None:
        sup = TaskSupervisor("w1", min_backoff=0.01)
        calls: list[float] = []

        async def duty() -> None:
            calls.append(time.monotonic())
            if len(calls) < 3:
                raise RuntimeError("broker away")

        await asyncio.wait([sup.keep(duty, "failure checks")])
        assert len(calls) == 3 and sup.failures == 2
        assert calls[2] - calls[1] >= calls[1] - calls[0] >= 0.01  # the delay doubles

    asyncio.run(run())


def test_a_duty_that_must_not_fail_reports_a_fatal_error() -> None:
    async def run() -> None:
        fatal: list[str] = []
        sup = TaskSupervisor("w1", on_fatal=fatal.append)

        async def duty() -> None:
            raise OSError("disk full")

        await asyncio.wait([sup.keep(duty, "the assignment tailer", restart=False)])
        assert fatal == ["w1: the assignment tailer failed: OSError: disk full"]

    asyncio.run(run())


def test_close_cancels_and_waits_for_every_task() -> None:
    async def run() -> None:
        sup = TaskSupervisor("w1")
        ended: list[str] = []

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                ended.append("yes")

        sup.keep(forever, "probe")
        sup.spawn(forever(), "one-shot")
        await asyncio.sleep(0)
        await sup.close()
        assert ended == ["yes", "yes"] and len(sup) == 0 and sup.failures == 0

    asyncio.run(run())


def test_probe_sees_a_blocked_loop_and_forgets_it_after_its_window() -> None:
    async def run() -> None:
        probe = LoopLagProbe(interval=0.005, window=0.3)
        task = asyncio.create_task(probe.run())
        await asyncio.sleep(0.05)
        time.sleep(0.1)  # block the loop on purpose
        await asyncio.sleep(0.05)
        assert probe.max_ms >= 80 and probe.recent_max_ms >= 80
        await asyncio.sleep(0.4)
        assert probe.max_ms >= 80 and probe.recent_max_ms < 80 and probe.samples > 10
        task.cancel()

    asyncio.run(run())


def test_probe_window_keeps_only_recent_values() -> None:
    probe = LoopLagProbe(window=1.0)
    probe.record(30.0, now=100.0)
    probe.record(2.0, now=100.5)
    probe._forget(100.9)
    assert [lag for _, lag in probe._recent] == [30.0, 2.0]
    probe._forget(101.2)
    assert [lag for _, lag in probe._recent] == [2.0]
    assert probe.max_ms == 30.0 and probe.last_ms == 2.0 and probe.samples == 2
