"""Broker workarounds run only where the broker's declared capabilities ask for them."""

from __future__ import annotations

from typing import Any

import pulsar
import pytest

import engine.broker.client as broker_client
from engine.broker import EmbeddedBroker
from engine.broker.capabilities import workarounds_run
from engine.broker.client import BrokerOptions, make_client

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
