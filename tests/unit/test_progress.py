"""Input progress of EFFECTIVELY_ONCE: a mark plus out-of-order arrivals past it."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from engine.instance.progress import PartitionProgress


def stream(entries: list[int]) -> list[tuple[int, int, int, int]]:
    """Positions of a partition: one entry per item, batched when the item is above 1."""
    out = []
    for entry, size in enumerate(entries):
        if size <= 1:
            out.append((3, entry, -1, 0))
        else:
            out.extend((3, entry, b, size) for b in range(size))
    return out


def test_in_order_inputs_move_the_mark_and_keep_nothing_above() -> None:
    positions = stream([1, 3, 1, 2])
    p = PartitionProgress().with_applied(positions[:4]).with_applied(positions[4:])
    assert p.mark == positions[-1] and p.above == {}
    assert all(p.applied(pos) for pos in positions)


def test_a_gap_keeps_later_inputs_above_the_mark_until_filled() -> None:
    positions = stream([1, 1, 2, 1])  # entries 0, 1, 2 (two in a batch), 3
    p = PartitionProgress().with_applied([positions[0], positions[3], positions[4]])
    assert p.mark == positions[0]
    assert not p.applied(positions[1]) and not p.applied(positions[2])  # still to come
    assert p.applied(positions[3]) and p.applied(positions[4])
    p = p.with_applied([positions[1], positions[2]])
    assert p.mark == positions[4] and p.above == {}


def test_next_ledger_starts_at_entry_zero() -> None:
    p = PartitionProgress().with_applied([(3, 7, -1, 0), (9, 0, -1, 0), (9, 1, 0, 2), (9, 1, 1, 2)])
    assert p.mark == (9, 1, 1, 2) and p.above == {}


@given(st.lists(st.integers(1, 4), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_any_delivery_order_ends_with_all_applied_and_round_trips(
    entries: list[int], rng: random.Random
) -> None:
    positions = stream(entries)
    order = positions[:1] + rng.sample(positions[1:], len(positions) - 1)  # the first arrives first
    p = PartitionProgress()
    i = 0
    while i < len(order):
        step = rng.randint(1, 5)
        p = p.with_applied(order[i : i + step])
        p = PartitionProgress.decode(p.encode())
        assert all(p.applied(x) for x in order[: i + step])
        assert not any(p.applied(x) for x in order[i + step :])
        i += step
    assert p.mark == positions[-1] and p.above == {}
