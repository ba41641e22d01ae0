"""The one module that touches pulsar-client's private objects.

The public ``pulsar`` API wraps every received message and every send in Python
objects and callbacks; the hot path needs the client's underlying ``_pulsar``
consumer, producer and reader (``batch_receive`` of raw messages, ``MessageBuilder``,
``send_async(msg, None)``, ``flush_async``). Everything else in the engine reaches
them through the functions here, so a change in the client's internals is mended in
one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import _pulsar
import pulsar

__all__ = [
    "MessageBuilder",
    "SchemaInfo",
    "SchemaType",
    "consumer_configuration",
    "flush_async",
    "last_message_id",
    "raw_client",
    "raw_consumer",
    "raw_producer",
    "raw_reader",
]

#: The client's message builder (one per output message).
MessageBuilder = _pulsar.MessageBuilder
#: The client's schema type enum and schema description (for custom schema classes).
SchemaType = _pulsar.SchemaType
SchemaInfo = _pulsar.SchemaInfo


def raw_consumer(consumer: pulsar.Consumer) -> Any:
    """The underlying ``_pulsar.Consumer`` (``batch_receive``, ``acknowledge`` of raw messages)."""
    return consumer._consumer


def raw_producer(producer: pulsar.Producer) -> Any:
    """The underlying ``_pulsar.Producer`` (``send_async(message, callback)``, ``flush_async``)."""
    return producer._producer


def raw_reader(reader: pulsar.Reader) -> Any:
    """The underlying ``_pulsar.Reader`` (``read_next`` without wrapping)."""
    return reader._reader


def raw_client(client: pulsar.Client) -> Any:
    """The underlying ``_pulsar.Client`` (asynchronous subscribe)."""
    return client._client


def consumer_configuration() -> Any:
    """A default ``_pulsar.ConsumerConfiguration`` (for ``raw_client(c).subscribe_async``)."""
    return _pulsar.ConsumerConfiguration()


def flush_async(producer: pulsar.Producer, done: Callable[[bool], None]) -> None:
    """Flush ``producer``; ``done(ok)`` runs on the client's thread and must only hand over."""
    producer._producer.flush_async(lambda result: done(result == pulsar.Result.Ok))


def last_message_id(consumer: pulsar.Consumer) -> Any:
    """The id of the last message of the consumer's topic (raises on a topic never written)."""
    return consumer._consumer.get_last_message_id()
