"""Reading a cluster topic's range at start-up: a range that starts at the topic's end is empty."""

from __future__ import annotations

import pulsar

from engine.cluster.topic_io import read_range, topic_end
from tests.integration.harness import produce


def test_a_range_from_the_last_message_is_empty_at_once(client: pulsar.Client, topic_prefix: str) -> None:
    topic = f"persistent://public/default/{topic_prefix}-meta"
    produce(client, topic, ["a", "b"], batching=False)
    end = topic_end(client, topic)
    assert end is not None
    everything, last = read_range(client, topic, pulsar.MessageId.earliest, end)
    assert [m.data() for m in everything] == [b"a", b"b"]
    # A snapshot taken at the last record: nothing follows it, and the read says so instead
    # of waiting for a message that will not come (it used to raise "stalled after 0 messages").
    after, same = read_range(client, topic, last, end)
    assert after == [] and same == last
