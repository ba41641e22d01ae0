"""The EFFECTIVELY_ONCE sink settlement on a batch that holds one input twice.

pulsar-lite may hand a Failover consumer the same entry several times in one batch.
The copies are settled with their first delivery: a batch that fails is delivered
again with none of its inputs acknowledged (a copy acked at once would ack the input
itself, which the broker then never delivers again).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from engine.broker.capabilities import BrokerCapabilities
from engine.hotpath import HotPath
from engine.io.connectors.jdbc import SqliteSink
from engine.io.sink_settlement import SinkEffectivelyOnce, SinkStats
from tests.fakes import FakeMessage
from tests.unit.test_settlements import make_parts, spec_of


def test_a_failing_input_delivered_twice_in_one_batch_is_not_acked(hot: HotPath, tmp_path: Path) -> None:
    db = tmp_path / "sink.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
    sink = SqliteSink()
    sink.open({"jdbcUrl": f"jdbc:sqlite:{db}", "tableName": "t"}, None)
    spec = spec_of(processingGuarantees="EFFECTIVELY_ONCE", maxMessageRetries=3)
    parts, inputs, _pool, _ = make_parts(hot, spec, lambda v, c: v, capabilities=BrokerCapabilities.apache())
    codec: Any = hot.serde.Codec(hot.serde.KIND_JSON)
    settlement = SinkEffectivelyOnce(parts, sink, codec, SinkStats())
    try:
        settlement.start()
        bad = [FakeMessage(b"{not json", ledger=1, entry=0), FakeMessage(b"{not json", ledger=1, entry=0)]
        settlement.settle(bad)
        assert inputs.raw.acked == [] and inputs.redelivered == 1
        assert settlement.duplicates_dropped == 1
        assert "decoding the input failed" in settlement.sink_stats.last_error
    finally:
        sink.close()
