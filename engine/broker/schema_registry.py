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

The registry is kept per client (:class:`_ClientRegistry`): one producer, made on first
use, and the records read so far. Each look-up reads what was recorded since with a plain
reader, from the last record read up to ``has_message_available() == False``, then closes
it. No TableView is used: the client's TableView keeps reading the topic's tail on its I/O
thread, and one closed right after it was opened made that thread read through a reader
already gone (a segmentation fault of the whole process). The producer is closed with the
client.

Compatibility, as Apache's default strategy sees it for these types: the schema type must
be the same; for AVRO and JSON, every field the reader has without a default must be in
the writer's schema, with the same type.
"""

from __future__ import annotations

import threading
import weakref
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


#: How long one registry record may take to arrive once the broker said it is there.
_READ_TIMEOUT_MS = 10_000


def _position(msg_id: Any) -> tuple[int, int, int]:
    return (msg_id.ledger_id(), msg_id.entry_id(), msg_id.batch_index())


class _ClientRegistry:
    """One client's view of :data:`REGISTRY_TOPIC`: its producer and the records read so far.

    Holds no reference to the Python client (so a closed client is collected); the
    C++ client closes the producer with itself. Every method is called under ``lock``.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._producer: Any = None
        #: Topic -> its schema record (JSON), the latest read per key.
        self._records: dict[str, bytes] = {}
        #: The id of the last record read (``None``: nothing read yet).
        self._last: Any = None
        self._opened = False

    def send(self, client: pulsar.Client, value: bytes, key: str) -> None:
        """Write one record (blocking until the broker has it)."""
        if self._producer is None:
            self._producer = client.create_producer(REGISTRY_TOPIC, batching_enabled=False)
        self._producer.send(value, partition_key=key)

    def recorded(self, client: pulsar.Client, topic: str) -> bytes | None:
        """``topic``'s record, after reading what the registry got since the last look-up."""
        if not self._opened:
            # pulsar-lite has no last message id for a topic that never had a message, and
            # a reader's ``has_message_available`` asks for it: write a record of no topic's
            # first, once per client.
            self.send(client, b"{}", _OPENED_KEY)
            self._opened = True
        start = self._last if self._last is not None else pulsar.MessageId.earliest
        reader = client.create_reader(REGISTRY_TOPIC, start)
        try:
            while reader.has_message_available():
                msg = reader.read_next(_READ_TIMEOUT_MS)
                at = msg.message_id()
                if self._last is not None and _position(at) <= _position(self._last):
                    continue  # pulsar-lite may hand a reader a whole entry again
                self._last = at
                self._records[msg.partition_key()] = msg.data()
        finally:
            reader.close()
        return self._records.get(topic)


#: The registry of each client (weak: a client's entry goes with the client).
_REGISTRIES: weakref.WeakKeyDictionary[pulsar.Client, _ClientRegistry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def _registry_of(client: pulsar.Client) -> _ClientRegistry:
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(client)
        if registry is None:
            registry = _REGISTRIES[client] = _ClientRegistry()
        return registry


class SchemaChecks:
    """Check (and record) the schemas of one client's producers and consumers where the broker does not.

    On a broker with a schema registry every method returns at once: the broker checks.
    Every ``SchemaChecks`` of one client shares that client's registry producer and
    records; there is nothing to close (they go with the client).
    """

    def __init__(self, client: pulsar.Client, capabilities: BrokerCapabilities) -> None:
        self._client = client
        self._capabilities = capabilities

    @property
    def active(self) -> bool:
        """Whether the engine checks schemas itself (the broker has no registry)."""
        return not self._capabilities.schema_registry

    def _recorded(self, registry: _ClientRegistry, topic: str) -> dict[str, Any] | None:
        value = registry.recorded(self._client, topic)
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
        registry = _registry_of(self._client)
        with registry.lock:
            recorded = self._recorded(registry, topic)
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
        registry = _registry_of(self._client)
        with registry.lock:
            recorded = self._recorded(registry, topic)
            if recorded is not None:
                why = incompatibility(recorded, mine)
                if why:
                    raise IncompatibleSchemaError(
                        f"cannot produce to {topic} with this {mine['type']} schema: {why}"
                    )
                return
            registry.send(self._client, orjson.dumps(mine), topic)
