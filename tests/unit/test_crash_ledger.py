"""The crash ledger records the same in-flight range whichever way it reads a batch."""

from __future__ import annotations

import os
import random

import orjson
import pytest

from engine.instance.crashes import CrashLedger
from tests.fakes import FakeMessage


def _batch() -> list[FakeMessage]:
    # A redelivered input (entry 3) arrives among new ones, out of order.
    msgs = [FakeMessage(b"x", ledger=0, entry=e, batch=b) for e in (10, 11, 12) for b in (0, 1)]
    msgs.insert(3, FakeMessage(b"x", ledger=0, entry=3, batch=2))
    random.Random(7).shuffle(msgs)
    return msgs


@pytest.mark.parametrize("one_topic", [False, True])
def test_range_covers_every_input_of_the_batch(tmp_path: str, one_topic: bool) -> None:
    path = os.path.join(str(tmp_path), "f-0.inflight")
    ledger = CrashLedger(path)
    ledger.open()
    ledger.one_topic = one_topic
    ledger.begin_batch(_batch())
    with open(path, "rb") as fh:
        recorded = orjson.loads(fh.read())
    assert recorded["batch"] == {"persistent://public/default/in": [[0, 3, 2], [0, 12, 1]]}
    # The next start of the instance sees every input of that batch as a suspect.
    again = CrashLedger(path)
    again.open()
    assert all(again.is_suspect(m) for m in _batch())
    assert not again.is_suspect(FakeMessage(b"x", ledger=0, entry=13, batch=0))
