"""Processing guarantees: when inputs are acknowledged, checked by what a later run sees."""

from __future__ import annotations

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.hotpath import HotPath
from tests.integration.functions_under_test import Flaky
from tests.integration.harness import consume, drain, produce, runner_for, wait_for


def test_atleast_once_acks_after_output(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Exclaim", "inputs": [inp], "output": out}
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, [f"m{i}" for i in range(300)])
        assert len(consume(client, out, 300, sub="r")) == 300
    # A second run on the same subscription gets nothing: every input was acknowledged.
    with runner_for(broker.url, hot.name, data_dir, cfg) as runner:
        produce(client, inp, ["late"])
        got = consume(client, out, 1, sub="r")
        assert [m.data() for m in got] == [b"late!"]
        assert wait_for(lambda: runner.instances[0].stats.received == 1)


def test_atleast_once_retries_user_failures(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    Flaky.seen.clear()
    with runner_for(
        broker.url, hot.name, data_dir, {"className": "Flaky", "inputs": [inp], "output": out}
    ) as r:
        produce(client, inp, [f"{topic_prefix}-{i}" for i in range(20)])
        got = consume(client, out, 20)
        stats = r.instances[0].stats
    assert sorted(m.data().decode() for m in got) == sorted(f"{topic_prefix}-{i}" for i in range(20))
    assert stats.user_exceptions == 20 and stats.processed_ok == 20


def test_atmost_once_acks_on_receipt(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "AlwaysFails",
        "name": "amo",
        "inputs": [inp],
        "output": out,
        "processingGuarantees": "ATMOST_ONCE",
    }
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        produce(client, inp, ["a", "b", "c"])
        assert wait_for(lambda: r.instances[0].stats.user_exceptions >= 3)
        assert not wait_for(lambda: r.instances[0].stats.received > 3, timeout=1.0)  # no redelivery
    cfg["className"] = "Exclaim"
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        produce(client, inp, ["d"])
        assert [m.data() for m in consume(client, out, 1, sub="r")] == [b"d!"]
        assert r.instances[0].stats.received == 1


def test_manual_acks_only_what_the_function_acks(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "ManualAck", "inputs": [inp], "output": out, "processingGuarantees": "MANUAL"}
    with runner_for(broker.url, hot.name, data_dir, cfg):
        # One entry per message: without batch-index acks a broker redelivers a whole
        # batch entry while any message of it is unacknowledged.
        produce(client, inp, ["ack-1", "keep-1", "ack-2", "keep-2"], batching=False)
        assert len(consume(client, out, 4, sub="r")) == 4
    # Unacknowledged inputs come back to the next run; acknowledged ones do not.
    with runner_for(broker.url, hot.name, data_dir, cfg):
        again = consume(client, out, 2, sub="r")
    assert sorted(m.data() for m in again) == [b"keep-1", b"keep-2"]


@pytest.mark.parametrize("ordering", ["retainOrdering", "retainKeyOrdering"])
def test_order_is_kept(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    ordering: str,
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Exclaim", "inputs": [inp], "output": out, ordering: True, "parallelism": 2}
    msgs = [(f"{key}:{i}".encode(), key, {}) for i in range(200) for key in ("k1", "k2")]
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, msgs)
        got = consume(client, out, len(msgs))
    assert len(got) >= len(msgs)
    for key in ("k1", "k2"):
        seq = [int(m.data().decode()[:-1].split(":")[1]) for m in got if m.data().startswith(key.encode())]
        dedup = list(dict.fromkeys(seq))
        assert dedup == sorted(dedup) and len(dedup) == 200, key


def test_failover_drops_redelivered_duplicates(hot: HotPath) -> None:
    """Ordered subscriptions skip whole entries delivered again (pulsar-lite does this)."""
    from tests.fakes import FakeConsumer, FakeMessage

    filt = hot.acks.DuplicateFilter()
    first = [FakeMessage(b"x", ledger=1, entry=e) for e in range(3)]
    fresh, dups = filt.admit(first)
    assert len(fresh) == 3 and not dups
    fresh, dups = filt.admit([FakeMessage(b"x", ledger=1, entry=e) for e in range(5)])
    assert [m.message_id().entry_id() for m in fresh] == [3, 4] and len(dups) == 3
    filt.mark_failed([first[1]])
    fresh, _ = filt.admit([FakeMessage(b"x", ledger=1, entry=1)])
    assert len(fresh) == 1  # a retry of a failed message passes once
    consumer = FakeConsumer()
    hot.acks.ack_messages(consumer, dups)
    assert len(consumer.acked) == 3


def test_drain_helper_sees_nothing_extra(
    broker: EmbeddedBroker, client: pulsar.Client, topic_prefix: str
) -> None:
    produce(client, f"{topic_prefix}-x", ["only"])
    assert [m.data() for m in drain(client, f"{topic_prefix}-x", quiet=0.5)] == [b"only"]


def test_failover_backlog_is_processed_exactly_once(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    """On a backlog, ordered consumers may be sent whole entries twice; none is processed twice."""
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    produce(client, inp, [f"m{i}" for i in range(5000)])
    cfg = {"className": "Exclaim", "inputs": [inp], "output": out, "retainOrdering": True}
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        got = consume(client, out, 5000, sub="r")
        inst = r.instances[0]
        assert wait_for(lambda: inst.stats.processed_ok == 5000)
        extra = drain(client, out, quiet=1.0, sub="r")
    outputs = [m.data().decode() for m in got] + [m.data().decode() for m in extra]
    assert len(outputs) == len(set(outputs)) == 5000
    assert inst.stats.received == 5000
