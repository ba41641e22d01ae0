"""Micro benchmark: the dispatch loop alone on an in-memory batch, native vs pure twin.

Run with ``pytest bench/micro --benchmark-only``. Each round dispatches one batch of 1,000
messages (100-byte text payloads, IdentitySerDe) through the exclamation function.

* ``loop``: the dispatch loop alone. Message accessors and the output hand-off are
  C-implemented stubs (bound methods of built-ins), so the time is the hot path's own:
  decode, context, call, timing, encode, bookkeeping, stats.
* ``with_sender``: the same plus the output sender building messages on an in-memory
  producer written in Python (closer to a real run, where those calls go to the client).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from engine.hotpath import load

BATCH = 1000


class _Message:
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def data(self) -> bytes:
        return self._data

    def topic_name(self) -> str:
        return "persistent://public/default/in"

    def partition_key(self) -> str:
        return ""


class _Builder:
    __slots__ = ("payload",)

    def content(self, data: bytes) -> None:
        self.payload = data

    def build(self) -> bytes:
        return self.payload


class _Producer:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def send_async(self, msg: Any, callback: Any) -> None:
        self.count += 1


class _Context:
    _message: Any = None


def exclaim(value: str, context: Any) -> str:
    return value + "!"


def make(twin: str) -> tuple[Any, list[_Message]]:
    hot = load(twin)
    codec = hot.serde.Codec(hot.serde.KIND_IDENTITY)
    sender = hot.batching.OutputSender(_Producer(), _Builder)
    dispatcher = hot.dispatch.Dispatcher(
        exclaim,
        True,
        _Context(),
        {"persistent://public/default/in": codec},
        codec,
        codec,
        sender,
        hot.stats.InstanceStats(),
        0,
    )
    letters = b"abcdefghijklmnopqrstuvwxyz "
    msgs = [_Message((letters[i % 27 :] + letters * 4)[:100]) for i in range(BATCH)]
    return dispatcher, msgs


class _StubMessage:
    """Accessors are C-level callables, as cheap as a call can be."""

    __slots__ = ("data", "partition_key", "topic_name")

    def __init__(self, data: bytes) -> None:
        self.data = itertools.repeat(data).__next__
        self.topic_name = itertools.repeat("persistent://public/default/in").__next__
        self.partition_key = itertools.repeat("").__next__


def make_loop(twin: str) -> tuple[Any, list[_StubMessage]]:
    hot = load(twin)
    codec = hot.serde.Codec(hot.serde.KIND_IDENTITY)
    outputs: dict[bytes, Any] = {}
    dispatcher = hot.dispatch.Dispatcher(
        exclaim,
        True,
        _Context(),
        {"persistent://public/default/in": codec},
        codec,
        codec,
        outputs.__setitem__,
        hot.stats.InstanceStats(),
        0,
    )
    letters = b"abcdefghijklmnopqrstuvwxyz "
    msgs = [_StubMessage((letters[i % 27 :] + letters * 4)[:100]) for i in range(BATCH)]
    return dispatcher, msgs


@pytest.mark.parametrize("twin", ["native", "pure"])
def test_dispatch_loop(benchmark: Any, twin: str) -> None:
    dispatcher, msgs = make_loop(twin)
    outcome = benchmark(dispatcher.run, msgs)
    assert len(outcome.sent) == BATCH
    benchmark.extra_info["messages_per_round"] = BATCH


@pytest.mark.parametrize("twin", ["native", "pure"])
def test_dispatch_with_sender(benchmark: Any, twin: str) -> None:
    dispatcher, msgs = make(twin)
    outcome = benchmark(dispatcher.run, msgs)
    assert len(outcome.sent) == BATCH
    benchmark.extra_info["messages_per_round"] = BATCH
