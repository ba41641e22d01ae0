"""Micro benchmark: a batch's counter increments in the state buffer, native vs pure twin.

Run with ``pytest bench/micro --benchmark-only``. Each round adds 10,000 increments over
1,000 keys (a batch of 1,000 ten-word lines of a word count) and drains the buffer, as the
instance does before its one commit per batch.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.hotpath import load

KEYS = [f"word{i}" for i in range(1000)]
WORDS = [KEYS[(i * 7919) % 1000] for i in range(10000)]


@pytest.mark.parametrize("twin", ["native", "pure"])
def test_counter_increments(benchmark: Any, twin: str) -> None:
    hot = load(twin)

    def batch() -> dict[str, int]:
        buffer = hot.counters.StateBuffer()
        incr = buffer.incr
        for word in WORDS:
            incr(word, 1)
        return buffer.drain()[0]

    deltas = benchmark(batch)
    assert sum(deltas.values()) == len(WORDS) and len(deltas) == len(KEYS)
    benchmark.extra_info["increments_per_round"] = len(WORDS)
