"""What the crash ledger records of a batch about to run, and what the next start makes of it."""

from __future__ import annotations

import os
import random

import orjson

from engine.instance.crashes import CrashLedger
from tests.fakes import FakeMessage

TOPIC = "persistent://public/default/in"


def _batch() -> list[FakeMessage]:
    # A redelivered input (entry 3) arrives among new ones, out of order.
    msgs = [FakeMessage(b"x", ledger=0, entry=e, batch=b) for e in (10, 11, 12) for b in (0, 1)]
    msgs.insert(3, FakeMessage(b"x", ledger=0, entry=3, batch=2))
    return msgs


def _recorded(path: str) -> dict[str, list[list[int]]]:
    with open(path, "rb") as fh:
        batch: dict[str, list[list[int]]] = orjson.loads(fh.read())["batch"]
    return batch


def test_inputs_of_several_topics_are_ranged_exactly(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "f-0.inflight")
    ledger = CrashLedger(path)
    ledger.open()
    msgs = _batch()
    random.Random(7).shuffle(msgs)
    ledger.begin_batch(msgs)
    assert _recorded(path) == {TOPIC: [[0, 3, 2], [0, 12, 1]]}
    again = CrashLedger(path)
    again.open()
    assert all(again.is_suspect(m) for m in _batch())
    assert not again.is_suspect(FakeMessage(b"x", ledger=0, entry=13, batch=0))


def test_one_topic_is_bounded_by_its_first_and_last_input(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "f-0.inflight")
    ledger = CrashLedger(path)
    ledger.open()
    ledger.one_topic = True
    ledger.begin_batch(_batch())
    assert _recorded(path) == {TOPIC: [[0, 10, 0], [0, 12, 1]]}
    # Isolating a batch (one input at a time, after a death) ranges every input exactly.
    ledger.begin_isolation(_batch())
    assert _recorded(path) == {TOPIC: [[0, 3, 2], [0, 12, 1]]}
