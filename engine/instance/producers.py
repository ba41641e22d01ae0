"""Producers of one instance: output, ``context.publish`` topics, dead letters, log topic.

Every producer is created from the function's ProducerConfig (batching, pending
limits, compression, batch builder), never with a hard-coded batching delay. The
pool remembers which producers received messages since the last :meth:`ProducerPool.flush_touched`,
so one ``flush_async`` per touched producer completes a whole batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pulsar

from engine.broker.adapter import flush_async, raw_producer
from engine.config.function_config import ProducerConfig

__all__ = ["ProducerPool"]

log = logging.getLogger(__name__)

_COMPRESSION = {
    "NONE": pulsar.CompressionType.NONE,
    "LZ4": pulsar.CompressionType.LZ4,
    "ZLIB": pulsar.CompressionType.ZLib,
    "ZSTD": pulsar.CompressionType.ZSTD,
    "SNAPPY": pulsar.CompressionType.SNAPPY,
}


class ProducerPool:
    """Create producers on demand and flush the ones used since the last flush."""

    def __init__(
        self, client: pulsar.Client, config: ProducerConfig, producer_name_prefix: str, named: bool = False
    ) -> None:
        self._client = client
        self._named = named
        self._config = config
        self._prefix = producer_name_prefix
        self._by_topic: dict[str, Any] = {}
        self._touched: dict[str, Any] = {}
        #: Per-topic creation options: the schema to register, encryption.
        self._topic_options: dict[str, dict[str, Any]] = {}

    def configure_topic(self, topic: str, **options: Any) -> None:
        """Create ``topic``'s producer with ``options`` too (``schema=``, ``crypto_key_reader=``, …).

        Must be called before the producer is first used.
        """
        if topic in self._by_topic:
            raise RuntimeError(f"the producer of {topic} exists already")
        self._topic_options.setdefault(topic, {}).update(options)

    def schema_of(self, topic: str) -> Any:
        """The schema ``topic``'s producer registers, or ``None``."""
        return self._topic_options.get(topic, {}).get("schema")

    def _options(self) -> dict[str, Any]:
        cfg = self._config
        batching = cfg.batching_config
        opts: dict[str, Any] = {
            # Outputs are queued without per-message callbacks; a full queue must block,
            # never reject, or a rejected output would go unnoticed by the batch flush.
            "block_if_queue_full": True,
            "send_timeout_millis": 0,
            "batching_enabled": True if batching is None else batching.enabled,
            "batching_max_publish_delay_ms": 1
            if batching is None
            else batching.batching_max_publish_delay_ms,
            "max_pending_messages": cfg.max_pending_messages or 100000,
            "compression_type": _COMPRESSION[cfg.compression_type or "LZ4"],  # Apache's default
        }
        if cfg.max_pending_messages_across_partitions:
            opts["max_pending_messages_across_partitions"] = cfg.max_pending_messages_across_partitions
        if batching is not None and batching.batching_max_messages:
            opts["batching_max_messages"] = batching.batching_max_messages
        if batching is not None and batching.batching_max_bytes:
            opts["batching_max_allowed_size_in_bytes"] = batching.batching_max_bytes
        builder = (
            batching.batch_builder if batching and batching.batch_builder else None
        ) or cfg.batch_builder
        if builder == "KEY_BASED":
            opts["batching_type"] = pulsar.BatchingType.KeyBased
        if self._named:
            # A stable name lets a de-duplicating broker recognise the instance's producer
            # after a restart, and drop outputs whose sequence ids it has already seen.
            opts["producer_name"] = self._prefix
        return opts

    def get(self, topic: str) -> Any:
        """The high-level producer for ``topic``, created on first use."""
        producer = self._by_topic.get(topic)
        if producer is None:
            producer = self._client.create_producer(
                topic, **self._options(), **self._topic_options.get(topic, {})
            )
            self._by_topic[topic] = producer
        return producer

    def raw(self, topic: str) -> Any:
        """The client's low-level producer for ``topic`` (``send_async(message, callback)``)."""
        return raw_producer(self.get(topic))

    def touch(self, topic: str) -> None:
        """Note that ``topic``'s producer has messages the current batch depends on."""
        if topic not in self._touched:
            self._touched[topic] = self.get(topic)

    def touched_count(self) -> int:
        """How many producers were used since the last flush."""
        return len(self._touched)

    def flush_touched(self, done: Callable[[bool], None]) -> int:
        """``flush_async`` every touched producer; ``done(ok)`` is called once per producer.

        ``done`` runs on the client's thread: it must only hand the result over.
        Returns the number of flushes started.
        """
        touched = list(self._touched.values())
        self._touched.clear()
        for producer in touched:
            flush_async(producer, done)
        return len(touched)

    def flush_one(self, topic: str, done: Callable[[bool], None]) -> None:
        """``flush_async`` the producer of ``topic`` alone; ``done(ok)`` runs on the client's thread."""
        flush_async(self.get(topic), done)

    def flush_all(self) -> None:
        """Flush every producer and wait (shutdown)."""
        for topic, producer in self._by_topic.items():
            try:
                producer.flush()
            except pulsar.PulsarException as exc:  # what was not persisted is redelivered as input
                log.warning("flushing the producer of %s at shutdown failed: %s", topic, exc)
        self._touched.clear()

    def close(self) -> None:
        """Close every producer."""
        for topic, producer in self._by_topic.items():
            try:
                producer.close()
            except pulsar.PulsarException as exc:
                log.debug("closing the producer of %s: %s", topic, exc)
        self._by_topic.clear()
