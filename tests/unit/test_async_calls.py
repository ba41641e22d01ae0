"""The async dispatcher's call slots and the per-call Context copy, on both twins."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from engine.hotpath import HotPath
from engine.instance.calls import AsyncDispatcher, async_batch_size
from engine.instance.calls.common import call_context
from tests.fakes import FakeBuilder, FakeMessage, FakeProducer

TOPIC = "persistent://public/default/in"


class Ctx:
    def __init__(self) -> None:
        self._message: Any = None
        self.shared = ["one list"]

    def get_message_key(self) -> str:
        return str(self._message.partition_key())


def make(hot: HotPath, fn: Any, max_pending: int, timeout_ms: int = 0) -> tuple[Any, Any, FakeProducer]:
    stats = hot.stats.InstanceStats()
    producer = FakeProducer()
    codec = hot.serde.Codec(hot.serde.KIND_STRING)
    d = AsyncDispatcher(
        fn,
        True,
        max_pending,
        hot=hot,
        context=Ctx(),
        codecs={TOPIC: codec},
        default_codec=codec,
        output_codec=codec,
        send=hot.batching.OutputSender(producer, FakeBuilder),
        stats=stats,
        timeout_ms=timeout_ms,
    )
    return d, stats, producer


def test_no_more_calls_in_flight_than_allowed_and_outputs_in_input_order(hot: HotPath) -> None:
    in_flight = 0
    most = 0

    async def fn(value: str, ctx: Any) -> str:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001 * (int(value) % 4))  # later inputs often finish first
        in_flight -= 1
        return f"{value}@{ctx.get_message_key()}"

    d, stats, producer = make(hot, fn, max_pending=7)
    try:
        msgs = [FakeMessage(str(i).encode(), key=f"k{i}") for i in range(50)]
        out = d.run(msgs)
        assert most == 7
        assert out.sent == list(range(50)) and out.failed == []
        assert [m["content"] for m in producer.sent] == [f"{i}@k{i}".encode() for i in range(50)]
        assert stats.processed_ok == 50
        out = d.run(msgs[:3])  # fewer inputs than slots: one slot per input, the loop reused
        assert out.sent == [0, 1, 2] and most == 7
    finally:
        d.close()


def test_timeout_cancels_only_the_slow_call_and_the_functions_own_timeout_is_its_error(hot: HotPath) -> None:
    cancelled = []

    async def fn(value: str, ctx: Any) -> str:
        if value == "slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(value)
                raise
        if value == "own":
            raise asyncio.TimeoutError("the service timed out")
        await asyncio.sleep(0.001)
        return value

    d, stats, producer = make(hot, fn, max_pending=2, timeout_ms=100)
    try:
        out = d.run([FakeMessage(v.encode()) for v in ("a", "slow", "own", "b", "c")])
        assert out.sent == [0, 3, 4]
        (slow, timeout_text), (own, own_text) = [(i, text) for i, _, text in out.failed]
        assert (slow, timeout_text) == (1, "TimeoutError: process() ran over timeoutMs=100")
        assert own == 2 and "TimeoutError: the service timed out" in own_text and "timeoutMs" not in own_text
        assert cancelled == ["slow"]
        assert [m["content"] for m in producer.sent] == [b"a", b"b", b"c"]
        assert stats.user_exceptions == 2 and stats.processed_ok == 3
    finally:
        d.close()


def test_a_call_that_swallows_its_timeout_keeps_its_result_one_that_converts_it_timed_out(
    hot: HotPath,
) -> None:
    async def fn(value: str, ctx: Any) -> str:
        if value in ("stubborn", "converts"):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if value == "converts":
                    raise RuntimeError("the call was interrupted") from None
                return "gave up"
        await asyncio.sleep(0.001)
        return value

    d, _stats, producer = make(hot, fn, max_pending=1, timeout_ms=50)  # one slot runs every call
    try:
        out = d.run([FakeMessage(v.encode()) for v in ("stubborn", "next", "converts", "last")])
        assert out.sent == [0, 1, 3]
        assert [(i, text) for i, _, text in out.failed] == [
            (2, "TimeoutError: process() ran over timeoutMs=50")
        ]
        assert [m["content"] for m in producer.sent] == [b"gave up", b"next", b"last"]
    finally:
        d.close()


def test_call_context_is_a_shallow_copy_pointing_at_its_message() -> None:
    base = Ctx()
    ctx = call_context(base, "m1")
    assert type(ctx) is Ctx and ctx._message == "m1" and base._message is None
    assert ctx.shared is base.shared
    ctx.extra = 1
    assert not hasattr(base, "extra")

    class Copying(Ctx):
        copies = 0

        def __copy__(self) -> Copying:
            Copying.copies += 1
            new = Copying()
            new.shared = self.shared
            return new

    own = call_context(Copying(), "m2")
    assert Copying.copies == 1 and own._message == "m2"
    assert copy.copy(own)._message is None  # its own protocol, as written


def test_an_async_function_receives_four_calls_per_slot_within_bounds() -> None:
    assert async_batch_size(1000, 500) == 2000
    assert async_batch_size(1000, 1000) == 4000  # the default maxPendingAsyncRequests
    assert async_batch_size(1000, 100) == 1000  # batch_max_messages is the floor
    assert async_batch_size(1000, 50_000) == 10_000
    assert async_batch_size(20_000, 10) == 20_000
