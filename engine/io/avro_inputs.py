"""AVRO inputs of a sink: each record decoded, with the schema its writer used, into a dict of fields.

A sink input with ``schemaType: AVRO`` (``--schema-type AVRO``) carries Avro records, and
the sink has no Record class for them (the JDBC sinks map fields to columns by name), so
the writer's schema decodes them, as Apache's sinks read a ``GenericRecord``. It is found:

* on a broker with a schema registry (Apache Pulsar): the schema version the message
  carries, else the topic's latest schema, from the broker;
* on a broker that keeps no schemas (pulsar-lite): the schema the engine recorded for the
  topic when a Magnetar producer registered it, a function's or source's AVRO output
  (:mod:`engine.broker.schema_registry`).

A record decodes to a ``dict`` of its fields (nested records are dicts too). A payload
that is not Avro of the writer's schema raises :class:`AvroDecodeError`; a topic whose
schema is not known (yet) raises :class:`AvroSchemaUnknown`. Either way that record fails,
and is retried, then dead-lettered, never dropped. An unknown schema is looked up again
at most every :data:`LOOKUP_EVERY_S` seconds, so a sink started before its topic's first
producer decodes the records once the schema is there.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from typing import Any

import orjson
import pulsar

from engine.broker.adapter import raw_client
from engine.broker.capabilities import BrokerCapabilities
from engine.broker.schema_registry import REGISTRY_TOPIC
from engine.cluster.topic_io import position_key, read_range, topic_end

__all__ = ["LOOKUP_EVERY_S", "AvroDecodeError", "AvroInputs", "AvroSchemaUnknown", "parse_writer_schema"]

log = logging.getLogger(__name__)

#: An unknown schema is looked up again after this long.
LOOKUP_EVERY_S = 2.0

_PARTITION = re.compile(r"-partition-\d+$")


class AvroDecodeError(ValueError):
    """A payload is not Avro of its topic's schema."""


class AvroSchemaUnknown(LookupError):
    """No AVRO schema is known for a topic (none registered, or the broker did not answer)."""


def parse_writer_schema(definition: str, topic: str) -> Any:
    """The parsed (fastavro) schema of a definition in JSON; :class:`AvroSchemaUnknown` if it is none."""
    import fastavro

    try:
        return fastavro.parse_schema(orjson.loads(definition))
    except (orjson.JSONDecodeError, fastavro.schema.SchemaParseException, TypeError, KeyError) as exc:
        raise AvroSchemaUnknown(f"the AVRO schema recorded for {topic} does not parse: {exc}") from None


class AvroInputs:
    """Decodes a sink's AVRO inputs by topic (see the module docstring); used on the instance thread.

    Parameters
    ----------
    client
        The instance's client (schema look-ups).
    capabilities
        Whether the broker keeps schemas (else the engine's record of them is read).
    """

    def __init__(self, client: pulsar.Client, capabilities: BrokerCapabilities) -> None:
        self._client = client
        self._capabilities = capabilities
        #: ``(topic, schema version or -1) -> parsed schema``.
        self._schemas: dict[tuple[str, int], Any] = {}
        #: ``topic -> (when it was last looked up in vain, why)``.
        self._missing: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        #: The engine's schema records (topic -> JSON), read up to ``_registry_at``.
        self._registry: dict[str, bytes] = {}
        self._registry_at: Any = None

    # -- schemas ---------------------------------------------------------------------------------
    def _definition(self, topic: str, version: int) -> str:
        """The writer's schema definition (blocking on the broker); raises AvroSchemaUnknown."""
        if self._capabilities.schema_registry:
            try:
                info = raw_client(self._client).get_schema_info(topic, version)
            except Exception as exc:  # the client raises its own types: no schema, or no answer
                raise AvroSchemaUnknown(
                    f"the broker has no AVRO schema for {topic}: {type(exc).__name__}: {exc}"
                ) from None
            kind, definition = info.schema_type().name, info.schema()
        else:
            try:
                recorded = self._recorded(topic)
            except (pulsar.PulsarException, TimeoutError) as exc:
                raise AvroSchemaUnknown(f"reading the schema recorded for {topic} failed: {exc}") from None
            if recorded is None:
                raise AvroSchemaUnknown(
                    f"no AVRO schema is recorded for {topic} (the broker keeps none; a Magnetar "
                    "function's or source's AVRO output records its schema)"
                )
            kind, definition = str(recorded["type"]), str(recorded["schema"])
        if kind != "AVRO":
            raise AvroSchemaUnknown(f"the schema of {topic} is {kind}, not AVRO")
        return definition

    def _recorded(self, topic: str) -> dict[str, Any] | None:
        """The engine's record of ``topic``'s schema: the registry topic read on from where it was."""
        end = topic_end(self._client, REGISTRY_TOPIC)
        if end is not None and (
            self._registry_at is None or position_key(end) > position_key(self._registry_at)
        ):
            start = self._registry_at if self._registry_at is not None else pulsar.MessageId.earliest
            msgs, self._registry_at = read_range(self._client, REGISTRY_TOPIC, start, end)
            for msg in msgs:
                self._registry[msg.partition_key()] = msg.data()
        value = self._registry.get(topic)
        return orjson.loads(value) if value else None

    def schema(self, topic: str, version: int = -1) -> Any:
        """The parsed writer's schema of ``topic`` (``version`` -1: the latest); raises AvroSchemaUnknown."""
        topic = _PARTITION.sub("", topic)
        key = (topic, version)
        parsed = self._schemas.get(key)
        if parsed is not None:
            return parsed
        with self._lock:
            missing = self._missing.get(topic)
            if missing is not None and time.monotonic() - missing[0] < LOOKUP_EVERY_S:
                raise AvroSchemaUnknown(missing[1])
            try:
                parsed = parse_writer_schema(self._definition(topic, version), topic)
            except AvroSchemaUnknown as exc:
                self._missing[topic] = (time.monotonic(), str(exc))
                raise
            self._missing.pop(topic, None)
            self._schemas[key] = parsed
            log.info("decoding the AVRO records of %s with the schema %s", topic, parsed.get("name"))
            return parsed

    # -- decoding ----------------------------------------------------------------------------------
    def decode_message(self, msg: Any) -> dict[str, Any]:
        """The fields of one message's record; raises AvroDecodeError or AvroSchemaUnknown."""
        version = -1
        if self._capabilities.schema_registry:
            version = int(msg.int_schema_version())
        return self.decode(msg.data(), self.schema(msg.topic_name(), version), msg.topic_name())

    @staticmethod
    def decode(data: bytes, schema: Any, topic: str = "") -> dict[str, Any]:
        """The fields of ``data`` written with ``schema``; raises AvroDecodeError."""
        import fastavro

        buf = io.BytesIO(data)
        try:
            value: Any = fastavro.schemaless_reader(buf, schema, None)
        except Exception as exc:  # fastavro raises many types on a payload of another shape
            raise AvroDecodeError(
                f"not an AVRO record of {schema.get('name')} ({topic}): {type(exc).__name__}: {exc}"
            ) from None
        if buf.tell() != len(data):
            raise AvroDecodeError(
                f"not an AVRO record of {schema.get('name')} ({topic}): {len(data) - buf.tell()} bytes "
                "left over after the record"
            )
        if not isinstance(value, dict):
            raise AvroDecodeError(
                f"the AVRO schema of {topic} is not a record: it decodes to {type(value).__name__}"
            )
        return value
