"""The message broker: the embedded pulsar-lite process and client construction."""

from engine.broker.client import BrokerOptions, make_client
from engine.broker.embedded import BrokerStartError, EmbeddedBroker, free_port

__all__ = ["BrokerOptions", "BrokerStartError", "EmbeddedBroker", "free_port", "make_client"]
