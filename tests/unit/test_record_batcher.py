"""The JDBC sinks' record batcher: full batches at once, the rest after the linger, bounded, settled."""

from __future__ import annotations

import threading
import time
from typing import Any

from engine.io.api import SinkRecord
from engine.io.connectors.batcher import MAX_PENDING_BATCHES, RecordBatcher


def _records(n: int, settled: dict[int, str | None], start: int = 0) -> list[SinkRecord]:
    def settle(index: int, reason: str | None) -> None:
        settled.setdefault(index, reason)

    return [SinkRecord(i, b"", None, i, settle) for i in range(start, start + n)]


def _wait(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_full_batches_are_written_and_the_rest_after_the_linger() -> None:
    batches: list[list[int]] = []
    settled: dict[int, str | None] = {}

    def flush(chunk: list[SinkRecord]) -> None:
        batches.append([r.value for r in chunk])
        for r in chunk:
            r.ack()

    batcher = RecordBatcher(4, 0.2, flush, "test-flush")
    t0 = time.monotonic()
    batcher.add(_records(3, settled))
    batcher.add(_records(7, settled, start=3))
    assert _wait(lambda: len(settled) == 10)
    took = time.monotonic() - t0
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert took >= 0.2  # the last two waited for their batch to fill
    assert all(reason is None for reason in settled.values())
    batcher.close()


def test_add_waits_while_the_queue_is_full_and_close_writes_what_is_queued() -> None:
    gate = threading.Event()
    written: list[int] = []
    settled: dict[int, str | None] = {}

    def flush(chunk: list[SinkRecord]) -> None:
        gate.wait(10)
        written.extend(r.value for r in chunk)
        for r in chunk:
            r.ack()

    batcher = RecordBatcher(2, 60.0, flush, "test-flush")
    batcher.add(_records(2, settled))  # the flusher takes it and blocks on the gate
    assert _wait(lambda: not batcher._pending)
    batcher.add(_records(2 * MAX_PENDING_BATCHES, settled, start=2))  # fills the queue
    more = threading.Thread(target=batcher.add, args=(_records(1, settled, start=100),))
    more.start()
    more.join(0.3)
    assert more.is_alive()  # no room: it waits for the flusher
    gate.set()
    more.join(5)
    assert not more.is_alive()
    batcher.close()  # the last record does not wait for its 60 s linger
    assert sorted(written) == [*range(2 + 2 * MAX_PENDING_BATCHES), 100]
    assert len(settled) == len(written)


def test_a_flush_that_raises_fails_its_records() -> None:
    settled: dict[int, str | None] = {}

    def flush(chunk: list[SinkRecord]) -> None:
        raise TypeError("boom")

    batcher = RecordBatcher(2, 0.01, flush, "test-flush")
    batcher.add(_records(3, settled))
    assert _wait(lambda: len(settled) == 3)
    assert all("TypeError: boom" in (reason or "") for reason in settled.values())
    batcher.close()
