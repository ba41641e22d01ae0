"""The message broker: the embedded pulsar-lite process, client construction, and what each broker can do.

:mod:`engine.broker.adapter` is the only module that touches the client's private objects.
"""

from engine.broker.capabilities import BROKER_KINDS, BrokerCapabilities
from engine.broker.client import BrokerOptions, make_client
from engine.broker.embedded import BrokerStartError, EmbeddedBroker, free_port

__all__ = [
    "BROKER_KINDS",
    "BrokerCapabilities",
    "BrokerOptions",
    "BrokerStartError",
    "EmbeddedBroker",
    "free_port",
    "make_client",
]
