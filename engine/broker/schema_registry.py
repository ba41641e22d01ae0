"""The schema checks Apache's broker makes, kept by the engine on a broker that makes none (pulsar-lite).

Apache Pulsar stores the schema the first producer of a topic registers and refuses a
producer or consumer whose schema is incompatible with it, so a function whose input
schema does not match the previous function's output fails at start with
``IncompatibleSchema``. pulsar-lite accepts any schema and keeps none
(:attr:`~engine.broker.capabilities.BrokerCapabilities.schema_registry` is false); there the
engine records each output schema in one compacted-by-key topic of the broker,
:data:`REGISTRY_TOPIC` (key: the topic, value: the schema), and checks every schema a
function's producer or consumer registers against it before creating the producer or
subscribing. Only Magnetar's own producers and consumers take part.

Compatibility, as Apache's default strategy sees it for these types: the schema type must
be the same; for AVRO and JSON, every field the reader has without a default must be in
the writer's schema, with the same type.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pulsar
from pulsar.schema import Schema

from engine.broker.capabilities import BrokerCapabilities

__all__ = ["REGISTRY_TOPIC", "IncompatibleSchemaError", "SchemaChecks", "incompatibility"]

#: Where the engine records topics' schemas on a broker without a schema registry.
REGISTRY_TOPIC = "persistent://public/functions/schema-registry"

_RECORD_TYPES = ("AVRO", "JSON")
#: The key of the record that opens the registry topic (no topic is named so).
_OPENED_KEY = "__opened__"


class IncompatibleSchemaError(pulsar.IncompatibleSchema):
    """A schema does not match the one recorded for its topic (as the broker's ``IncompatibleSchema``)."""


def _describe(schema: Schema) -> dict[str, Any]:
    info = schema.schema_info()
    return {"type": info.schema_type().name, "name": info.name(), "schema": info.schema()}


def _fields(definition: str) -> dict[str, tuple[str, bool]] | None:
    """``name -> (type, has default)`` of a record schema definition; ``None`` if it is not one."""
    try:
        parsed = orjson.loads(definition)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("fields"), list):
        return None
    out = {}
    for f in parsed["fields"]:
        if isinstance(f, dict) and "name" in f:
            out[str(f["name"])] = (orjson.dumps(f.get("type")).decode(), "default" in f)
    return out


def incompatibility(recorded: dict[str, Any], reader: dict[str, Any]) -> str | None:
    """Why ``reader`` cannot read data written with ``recorded`` (:func:`_describe` forms), or ``None``."""
    if recorded["type"] != reader["type"]:
        return f"the topic's schema is {recorded['type']}, not {reader['type']}"
    if reader["type"] not in _RECORD_TYPES or recorded["schema"] == reader["schema"]:
        return None
    writer_fields, reader_fields = _fields(recorded["schema"]), _fields(reader["schema"])
    if writer_fields is None or reader_fields is None:
        return None
    for name, (typ, has_default) in reader_fields.items():
        written = writer_fields.get(name)
        if written is None and not has_default:
            return f"field {name!r} is not in the topic's {recorded['type']} schema and has no default"
        if written is not None and written[0] != typ:
            return f"field {name!r} is {written[0]} in the topic's schema, not {typ}"
    return None


class SchemaChecks:
    """Check (and record) the schemas of one client's producers and consumers where the broker does not.

    On a broker with a schema registry every method returns at once: the broker checks.
    """

    def __init__(self, client: pulsar.Client, capabilities: BrokerCapabilities) -> None:
        self._client = client
        self._capabilities = capabilities
        self._lock = threading.Lock()
        self._producer: Any = None
        self._opened = False

    @property
    def active(self) -> bool:
        """Whether the engine checks schemas itself (the broker has no registry)."""
        return not self._capabilities.schema_registry

    def _registry_producer(self) -> Any:
        if self._producer is None:
            self._producer = self._client.create_producer(REGISTRY_TOPIC, batching_enabled=False)
        return self._producer

    def _view(self) -> Any:
        if not self._opened:
            # pulsar-lite cannot open a view of a topic that never had a message (it fails
            # the last-message-id look-up, and the client has crashed in a send that
            # followed such a failure): write a record of no topic's first, once per client.
            self._registry_producer().send(b"{}", partition_key=_OPENED_KEY)
            self._opened = True
        return self._client.create_table_view(REGISTRY_TOPIC)

    def _recorded(self, topic: str) -> dict[str, Any] | None:
        view = self._view()
        try:
            value = view.get(topic)
        finally:
            view.close()
        return orjson.loads(value) if value else None

    def _announce(self) -> None:
        self._capabilities.workaround(
            "engine-checks-schemas",
            "the broker neither keeps nor checks schemas; the engine records output schemas in "
            f"{REGISTRY_TOPIC} and checks inputs and outputs against them",
        )

    def check_consumer(self, topic: str, schema: Schema | None) -> dict[str, Any] | None:
        """Raise :class:`IncompatibleSchemaError` if ``schema`` cannot read ``topic``'s recorded schema.

        Returns the recorded schema (``type``, ``name``, ``schema``: the writer's), or ``None``.
        """
        if not self.active or schema is None:
            return None
        self._announce()
        recorded = self._recorded(topic)
        if recorded is None:
            return None
        why = incompatibility(recorded, _describe(schema))
        if why:
            raise IncompatibleSchemaError(
                f"cannot subscribe to {topic} with this {_describe(schema)['type']} schema: {why}"
            )
        return recorded

    def register_producer(self, topic: str, schema: Schema | None) -> None:
        """Check ``schema`` against ``topic``'s recorded schema, and record it if there is none."""
        if not self.active or schema is None:
            return
        self._announce()
        mine = _describe(schema)
        with self._lock:
            recorded = self._recorded(topic)
            if recorded is not None:
                why = incompatibility(recorded, mine)
                if why:
                    raise IncompatibleSchemaError(
                        f"cannot produce to {topic} with this {mine['type']} schema: {why}"
                    )
                return
            self._registry_producer().send(orjson.dumps(mine), partition_key=topic)

    def close(self) -> None:
        """Close the registry producer, if one was made."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()
