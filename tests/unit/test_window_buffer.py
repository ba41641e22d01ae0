"""Which inputs form which window and when each input expires (pure logic)."""

from __future__ import annotations

from typing import Any

from engine.config import parse_function_config, resolve
from engine.config.windows import WindowSpec
from engine.instance.windows.buffer import WindowBuffer


def window(**wc: Any) -> WindowSpec:
    spec = resolve(parse_function_config({"className": "m.F", "inputs": ["in"], "windowConfig": wc}))
    assert spec.window is not None
    return spec.window


def test_count_tumbling_windows_expire_every_input_they_hold() -> None:
    buf = WindowBuffer(window(windowLengthCount=3))
    fired = buf.add_many([(i, i) for i in range(7)])
    assert [(w.items, w.expired) for w in fired] == [([0, 1, 2], [0, 1, 2]), ([3, 4, 5], [3, 4, 5])]
    assert len(buf) == 1


def test_count_sliding_windows_keep_what_the_next_window_needs() -> None:
    buf = WindowBuffer(window(windowLengthCount=4, slidingIntervalCount=2))
    fired = buf.add_many([(i, i) for i in range(8)])
    assert [w.items for w in fired] == [[0, 1], [0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]
    # Each input expires exactly once, after the last window it is in.
    expired = [x for w in fired for x in w.expired]
    assert expired == [0, 1, 2, 3, 4, 5] and len(buf) == 2


def test_add_one_by_one_matches_add_many() -> None:
    spec = window(windowLengthCount=5, slidingIntervalCount=3)
    a, b = WindowBuffer(spec), WindowBuffer(spec)
    many = [(w.items, w.expired) for w in a.add_many([(i, i) for i in range(20)])]
    one = [(w.items, w.expired) for i in range(20) for w in b.add(i, i)]
    assert many == one


def test_time_tumbling_windows_fire_when_the_clock_passes_their_end() -> None:
    buf = WindowBuffer(window(windowLengthDurationMs=100))
    for ts in (1, 50, 100, 101, 150, 250):
        assert buf.add(ts, ts) == []
    fired = buf.advance(199)
    assert [(w.start, w.end, w.items) for w in fired] == [(0, 100, [1, 50, 100])]
    fired = buf.advance(300)
    assert [(w.end, w.items) for w in fired] == [(200, [101, 150]), (300, [250])]
    assert len(buf) == 0


def test_time_sliding_windows_overlap_and_expire_after_the_last_one() -> None:
    buf = WindowBuffer(window(windowLengthDurationMs=200, slidingIntervalDurationMs=100))
    for ts in (10, 110, 210):
        buf.add(ts, ts)
    fired = buf.advance(300)
    assert [(w.end, w.items, w.expired) for w in fired] == [
        (100, [10], []),
        (200, [10, 110], [10]),
        (300, [110, 210], [110]),
    ]


def test_count_window_by_duration_keeps_the_recent_inputs() -> None:
    buf = WindowBuffer(window(windowLengthDurationMs=100, slidingIntervalCount=2))
    fired = buf.add_many([(0, "a"), (60, "b"), (120, "c"), (200, "d")])
    assert [(w.items, w.expired) for w in fired] == [(["a", "b"], []), (["c", "d"], ["a", "b"])]


def test_clear_forgets_everything() -> None:
    buf = WindowBuffer(window(windowLengthCount=2))
    buf.add(1, 1)
    buf.clear()
    assert len(buf) == 0 and [w.items for w in buf.add_many([(2, 2), (3, 3)])] == [[2, 3]]
