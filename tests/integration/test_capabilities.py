"""Broker workarounds run only where the broker's declared capabilities ask for them."""

from __future__ import annotations

import time
from typing import Any

import pulsar
import pytest

import engine.broker.client as broker_client
from engine.broker import EmbeddedBroker
from engine.broker.capabilities import workarounds_run
from engine.broker.client import (
    CHILD_CONSUMER_ID_BLOCK,
    RESTART_SPREAD,
    BrokerOptions,
    child_broker_options,
    make_client,
)

SPREAD_TOPIC = "__magnetar_consumer_id_spread__"


class _CountingClient:
    """The real ``_pulsar.Client``, with its asynchronous subscriptions counted."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self.spread_requests = 0
        self.spread_opened = 0

    def subscribe_async(self, topic: str, subscription: str, conf: Any, callback: Any) -> None:
        if topic.endswith(SPREAD_TOPIC):
            self.spread_requests += 1

        def counted(result: Any, consumer: Any) -> None:
            if result == pulsar.Result.Ok and topic.endswith(SPREAD_TOPIC):
                self.spread_opened += 1
            callback(result, consumer)

        self._native.subscribe_async(topic, subscription, conf, counted)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[_CountingClient]:
    seen: list[_CountingClient] = []
    real = broker_client.raw_client

    def spy(client: pulsar.Client) -> _CountingClient:
        wrapped = _CountingClient(real(client))
        seen.append(wrapped)
        return wrapped

    monkeypatch.setattr(broker_client, "raw_client", spy)
    return seen


def _usable(client: pulsar.Client, topic: str) -> None:
    """The client works: a message goes through the broker and back."""
    consumer = client.subscribe(topic, "check", initial_position=pulsar.InitialPosition.Earliest)
    producer = client.create_producer(topic)
    producer.send(b"ok")
    assert consumer.receive(10000).data() == b"ok"
    producer.close()
    consumer.close()


def test_apache_capabilities_open_no_spread_subscriptions(
    broker: EmbeddedBroker, counted: list[_CountingClient]
) -> None:
    # Apache Pulsar keys consumers per connection: whatever the spread setting says,
    # the workaround must not run (the test broker stands in for it here).
    opts = BrokerOptions(url=broker.url, kind="apache", consumer_id_spread=4096)
    assert not opts.capabilities.consumer_ids_collide
    client = make_client(opts)
    try:
        assert counted == []  # the private client was never even reached
        assert not {w for w in workarounds_run() if w.startswith("apache:")}
        _usable(client, "persistent://public/default/capabilities-apache")
    finally:
        client.close()


def test_pulsar_lite_capabilities_spread_the_consumer_ids(
    broker: EmbeddedBroker, counted: list[_CountingClient]
) -> None:
    opts = BrokerOptions(url=broker.url, kind="pulsar-lite", consumer_id_spread=64)
    assert opts.capabilities.consumer_ids_collide
    client = make_client(opts)
    try:
        assert len(counted) == 1
        spy = counted[0]
        assert 1 <= spy.spread_requests < 64
        assert spy.spread_opened == spy.spread_requests  # real subscriptions on the broker
        assert "pulsar-lite:consumer-id-spread" in workarounds_run()
        assert not {w for w in workarounds_run() if w.startswith("apache:")}
        _usable(client, "persistent://public/default/capabilities-lite")
    finally:
        client.close()


def test_no_spread_without_the_setting(broker: EmbeddedBroker, counted: list[_CountingClient]) -> None:
    client = make_client(BrokerOptions(url=broker.url, kind="pulsar-lite", consumer_id_spread=0))
    try:
        assert counted == []
    finally:
        client.close()


def test_children_of_one_function_take_fixed_offsets_and_share_a_subscription(
    broker: EmbeddedBroker, counted: list[_CountingClient]
) -> None:
    # As a worker launches the children of instances 0, 1 and 2: fixed offsets, no random spread.
    worker = BrokerOptions(url=broker.url, kind="pulsar-lite", consumer_id_spread=4096)
    children = [child_broker_options(worker, i) for i in range(3)]
    assert [c.consumer_id_offset for c in children] == [
        0,
        CHILD_CONSUMER_ID_BLOCK,
        2 * CHILD_CONSUMER_ID_BLOCK,
    ]
    assert all(c.consumer_id_spread == 0 for c in children)
    clients = [make_client(c) for c in children]
    topic = "persistent://public/default/capabilities-children"
    try:
        # Instance 0 takes no id at all (its client was never reached); the others exactly their offset.
        assert [spy.spread_requests for spy in counted] == [
            CHILD_CONSUMER_ID_BLOCK,
            2 * CHILD_CONSUMER_ID_BLOCK,
        ]
        assert [spy.spread_opened for spy in counted] == [spy.spread_requests for spy in counted]
        assert "pulsar-lite:consumer-id-offset" in workarounds_run()
        # Their first consumers on one subscription do not collide: every one of them receives.
        consumers = [
            c.subscribe(
                topic, "one-function", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=1
            )
            for c in clients
        ]
        producer = clients[0].create_producer(topic, batching_enabled=False)
        for i in range(30):
            producer.send(f"m{i}".encode())
        got: dict[int, int] = {}
        deadline = time.monotonic() + 20
        while sum(got.values()) < 30 and time.monotonic() < deadline:
            for n, consumer in enumerate(consumers):
                try:
                    msg = consumer.receive(50)
                except pulsar.Timeout:
                    continue
                consumer.acknowledge(msg)
                got[n] = got.get(n, 0) + 1
        assert sum(got.values()) == 30 and sorted(got) == [0, 1, 2], got
        assert all(c.is_connected() for c in consumers)
    finally:
        for c in clients:
            c.close()


def test_apache_children_take_no_offset(broker: EmbeddedBroker, counted: list[_CountingClient]) -> None:
    opts = child_broker_options(BrokerOptions(url=broker.url, kind="apache", consumer_id_spread=4096), 3)
    client = make_client(opts)
    try:
        assert counted == []
    finally:
        client.close()


def test_a_restarted_child_spreads_its_ids_above_every_first_child() -> None:
    # pulsar-lite may keep a dead child's consumers: the next start must not reuse its ids.
    opts = BrokerOptions(url="pulsar://127.0.0.1:6650", kind="pulsar-lite")
    offsets = {child_broker_options(opts, 2, 1, 3).consumer_id_offset for _ in range(20)}
    first_children = 3 * CHILD_CONSUMER_ID_BLOCK
    assert all(o is not None and first_children <= o < first_children + RESTART_SPREAD for o in offsets)
    assert len(offsets) > 1  # random: two restarted children rarely meet
