"""EFFECTIVELY_ONCE: state and input positions commit together; committed inputs are skipped.

Every test runs on both hot-path twins and both state stores (SQLite, PostgreSQL).
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from engine.hotpath import HotPath
from engine.instance.progress import PartitionProgress
from engine.state import open_state_store
from tests.integration.harness import consume, drain, produce, runner_for, wait_for

LINES = [f"w{i % 7} w{i % 3} common" for i in range(300)]


def expected(lines: list[str]) -> Counter[str]:
    return Counter(w for line in lines for w in line.split())


def counts(url: str, fqfn: str, words: list[str]) -> dict[str, int | None]:
    store = open_state_store(url)
    try:
        return {w: store.get_counter(fqfn, w) for w in words}
    finally:
        store.close()


def counts_match(url: str, fqfn: str, want: Counter[str]) -> bool:
    return counts(url, fqfn, list(want)) == dict(want)


def eo_config(name: str, inp: str, **extra: object) -> dict[str, object]:
    return {
        "className": "CountWords",
        "name": name,
        "inputs": [inp],
        "processingGuarantees": "EFFECTIVELY_ONCE",
        **extra,
    }


def test_committed_inputs_are_skipped_when_delivered_again(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    state_url: str,
) -> None:
    inp = f"{topic_prefix}-in"
    cfg = eo_config("eo", inp)
    fqfn = "public/default/eo"
    with runner_for(broker.url, hot.name, data_dir, cfg, state_storage_url=state_url):
        produce(client, inp, LINES)
        assert wait_for(lambda: counts_match(state_url, fqfn, expected(LINES)))
    # A new subscription from the earliest message delivers every input again, as a lost
    # ack, a rewound cursor or a broker's duplicate delivery would.
    more = [f"late{i} common" for i in range(40)]
    again = {**cfg, "subName": "from-the-start"}
    with runner_for(broker.url, hot.name, data_dir, again, state_storage_url=state_url) as r:
        produce(client, inp, more)
        want = expected(LINES + more)
        assert wait_for(lambda: counts_match(state_url, fqfn, want)), (
            counts(state_url, fqfn, list(want)),
            want,
        )
        assert wait_for(lambda: r.instances[0].duplicates_dropped >= len(LINES))
        assert r.status()[0]["numDuplicatesDropped"] >= len(LINES)
    assert counts_match(state_url, fqfn, expected(LINES + more))  # and not more
    store = open_state_store(state_url)
    assert set(store.get_positions(fqfn)) == {f"persistent://public/default/{inp}"}
    store.close()


def test_a_failing_input_rolls_back_its_state_and_is_dead_lettered(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    state_url: str,
) -> None:
    inp, out, dlq = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-dlq"
    cfg = eo_config("eof", inp, output=out, maxMessageRetries=2, deadLetterTopic=dlq)
    fqfn = "public/default/eof"
    lines = ["a b", "poison a", "c", "a c"]
    with runner_for(broker.url, hot.name, data_dir, cfg, state_storage_url=state_url) as r:
        produce(client, inp, lines)  # one batch entry: the failure rewinds its neighbours too
        dead = consume(client, dlq, 1)
        assert [m.data() for m in dead] == [b"poison a"]
        assert "poisoned line" in dead[0].properties()["__pfn_error__"]
        # The poisoned line's own increments (its "a" and "poison") never commit.
        want = Counter({"a": 2, "b": 1, "c": 2})
        assert wait_for(lambda: counts_match(state_url, fqfn, want))
        store = open_state_store(state_url)
        assert store.get_counter(fqfn, "poison") is None
        store.close()
        assert wait_for(lambda: r.instances[0].dead_lettered == 1)
        # Outputs carry sequence ids derived from the input positions.
        producer = r.instances[0].producers.get(f"persistent://public/default/{out}")
        assert producer.last_sequence_id() > 0
    outputs = [m.data() for m in drain(client, out)]
    # Outputs of the batch are sent again with each retry: at-least-once on pulsar-lite,
    # whose producers do not de-duplicate; never the poisoned line's.
    assert outputs.count(b"1") >= 1 and outputs.count(b"2") >= 2 and set(outputs) == {b"1", b"2"}


def test_start_warns_that_outputs_are_at_least_once_without_broker_dedup(
    broker: EmbeddedBroker, hot: HotPath, data_dir: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = eo_config("eow", f"{topic_prefix}-in")
    with caplog.at_level(logging.WARNING), runner_for(broker.url, hot.name, data_dir, cfg):
        pass
    assert any("outputs are at-least-once" in rec.getMessage() for rec in caplog.records)


def send_words(client: pulsar.Client, inp: str, prefix: str) -> list[tuple[int, int, int, int]]:
    """Ten unbatched messages ``<prefix>0``..``<prefix>9``; their positions."""
    producer = client.create_producer(inp, batching_enabled=False)
    ids = [producer.send(f"{prefix}{i}".encode()) for i in range(10)]
    producer.close()
    return [(mid.ledger_id(), mid.entry_id(), -1, 0) for mid in ids]


def seed_progress(state_url: str, fqfn: str, topic: str, progress: PartitionProgress) -> None:
    """Commit ``progress`` for ``topic``, as an earlier instance would have."""
    store = open_state_store(state_url)
    store.commit(fqfn, {}, set(), {}, positions={topic: (None, progress.encode())})
    store.close()


def test_inputs_the_broker_never_delivers_again_are_read_back(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    state_url: str,
) -> None:
    inp = f"{topic_prefix}-in"
    pos = send_words(client, inp, "w")
    topic = f"persistent://public/default/{inp}"
    # As after a crash on pulsar-lite: inputs 1-4 went to a consumer that died and the
    # broker never hands them out again, while 0 and 5-9 were applied.
    seed_progress(
        state_url, "public/default/eog", topic, PartitionProgress(pos[0], {p[:3]: p for p in pos[5:]})
    )
    cfg = eo_config("eog", inp, subscriptionPosition="Latest")  # the broker delivers none of them
    words = [f"w{i}" for i in range(10)]
    with runner_for(broker.url, hot.name, data_dir, cfg, state_storage_url=state_url) as r:
        want = {w: (1 if w in {"w1", "w2", "w3", "w4"} else None) for w in words}
        assert wait_for(lambda: counts(state_url, "public/default/eog", words) == want, timeout=20)
        assert r.instances[0].inputs_read_back == 4
    store = open_state_store(state_url)
    done = PartitionProgress.decode(store.get_positions("public/default/eog")[topic])
    store.close()
    assert done.mark == pos[9] and done.above == {}


def test_a_tail_the_broker_stops_delivering_is_read_back(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    state_url: str,
) -> None:
    inp = f"{topic_prefix}-in"
    pos = send_words(client, inp, "t")
    # Inputs 0-3 applied; 4-9 are on the topic but the subscription serves none of them.
    seed_progress(
        state_url, "public/default/eot", f"persistent://public/default/{inp}", PartitionProgress(pos[3])
    )
    cfg = eo_config("eot", inp, subscriptionPosition="Latest")
    words = [f"t{i}" for i in range(10)]
    with runner_for(broker.url, hot.name, data_dir, cfg, state_storage_url=state_url) as r:
        want = {w: (1 if int(w[1:]) >= 4 else None) for w in words}
        assert wait_for(lambda: counts(state_url, "public/default/eot", words) == want, timeout=20)
        assert r.instances[0].inputs_read_back == 6


def test_two_instances_of_one_function_apply_each_input_once(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    state_url: str,
) -> None:
    inp = f"{topic_prefix}-in"
    cfg = eo_config("eo2", inp, parallelism=2)  # one active consumer, one standby
    with runner_for(broker.url, hot.name, data_dir, cfg, state_storage_url=state_url):
        produce(client, inp, LINES[:150])
        assert wait_for(lambda: counts_match(state_url, "public/default/eo2", expected(LINES[:150])))
        time.sleep(2.5)  # past a standby's tail check: it must not apply anything again
        produce(client, inp, LINES[150:])
        assert wait_for(lambda: counts_match(state_url, "public/default/eo2", expected(LINES)))
    assert counts_match(state_url, "public/default/eo2", expected(LINES))
