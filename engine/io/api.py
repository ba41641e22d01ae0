"""The Python connector API: records, :class:`Source` and :class:`Sink`.

A source brings outside data into a topic: the engine calls :meth:`Source.read` in a
loop and publishes what it returns; each :class:`Record` is acknowledged to the source
(its ``ack`` callback) only once the broker persisted it, and failed (``fail``) when
publishing failed, so a source can commit its own offsets after persistence.

A sink sends a topic's messages out: the engine hands :meth:`Sink.write` whole
batches of :class:`SinkRecord`; the sink calls ``ack()`` or ``fail(reason)`` on each
record (during ``write`` or later, from any thread). An input is acknowledged only
after the sink acked it; a failed one is retried and, once its retries are used up,
dead-lettered. A sink that can commit its writes together with the input position
implements :class:`TransactionalSink` and runs EFFECTIVELY_ONCE.

Both get the Context of functions (state, secrets, logger, metrics, user config).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Record", "Sink", "SinkRecord", "Source", "TransactionalSink"]


@dataclass
class Record:
    """One record a source produced.

    Attributes
    ----------
    value
        The payload: ``bytes``, ``str``, a JSON-able ``dict``/``list``, or what the
        source's SerDe / schema type encodes.
    key
        The message key (partition key).
    properties
        Message properties.
    event_time
        Event time in ms since the epoch (0: none).
    partition
        A partition index of the destination topic; ``None`` lets the key decide.
    ack, fail
        Called (on the source's thread) once the record is persisted, or when
        publishing it failed (``fail(reason)``).
    """

    value: Any
    key: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    event_time: int = 0
    partition: int | None = None
    ack: Callable[[], None] | None = None
    fail: Callable[[str], None] | None = None


_UNREAD: Any = object()


class SinkRecord:
    """One input handed to a sink; call :meth:`ack` or :meth:`fail` exactly once.

    ``key``, ``properties``, ``event_time``, ``topic`` and ``message_id`` of a record
    made by :meth:`of_message` are read from the input message on first use, so a sink
    that never looks at them costs no client call for them.
    """

    __slots__ = (
        "_event_time",
        "_key",
        "_message_id",
        "_msg",
        "_properties",
        "_settle",
        "_topic",
        "data",
        "index",
        "value",
    )

    def __init__(
        self,
        value: Any,
        data: bytes,
        key: str | None,
        properties: dict[str, str],
        event_time: int,
        topic: str,
        message_id: Any,
        index: int,
        settle: Callable[[int, str | None], None],
    ) -> None:
        #: The decoded payload (by the sink's schema type or SerDe).
        self.value = value
        #: The raw payload.
        self.data = data
        self._key = key
        self._properties = properties
        self._event_time = event_time
        self._topic = topic
        self._message_id = message_id
        self._msg: Any = None
        #: Position of the record in its batch.
        self.index = index
        self._settle = settle

    @classmethod
    def of_message(
        cls, value: Any, data: bytes, msg: Any, index: int, settle: Callable[[int, str | None], None]
    ) -> SinkRecord:
        """The record of received message ``msg``; its other fields are read from ``msg`` when used."""
        record = cls.__new__(cls)
        record.value = value
        record.data = data
        record._key = record._properties = record._event_time = _UNREAD
        record._topic = record._message_id = _UNREAD
        record._msg = msg
        record.index = index
        record._settle = settle
        return record

    @property
    def key(self) -> str | None:
        """The message key (``None``: none)."""
        if self._key is _UNREAD:
            self._key = self._msg.partition_key() or None
        key: str | None = self._key
        return key

    @key.setter
    def key(self, value: str | None) -> None:
        self._key = value

    @property
    def properties(self) -> dict[str, str]:
        """The message properties."""
        if self._properties is _UNREAD:
            self._properties = dict(self._msg.properties())
        props: dict[str, str] = self._properties
        return props

    @properties.setter
    def properties(self, value: dict[str, str]) -> None:
        self._properties = value

    @property
    def event_time(self) -> int:
        """Event time in ms since the epoch (0: none)."""
        if self._event_time is _UNREAD:
            self._event_time = self._msg.event_timestamp()
        when: int = self._event_time
        return when

    @event_time.setter
    def event_time(self, value: int) -> None:
        self._event_time = value

    @property
    def topic(self) -> str:
        """The topic the input came from."""
        if self._topic is _UNREAD:
            self._topic = self._msg.topic_name()
        topic: str = self._topic
        return topic

    @topic.setter
    def topic(self, value: str) -> None:
        self._topic = value

    @property
    def message_id(self) -> Any:
        """The input's message id."""
        if self._message_id is _UNREAD:
            self._message_id = self._msg.message_id()
        return self._message_id

    @message_id.setter
    def message_id(self, value: Any) -> None:
        self._message_id = value

    def ack(self) -> None:
        """The record is written: its input may be acknowledged."""
        self._settle(self.index, None)

    def fail(self, reason: str = "the sink failed the record") -> None:
        """The record could not be written: its input is retried, then dead-lettered."""
        self._settle(self.index, reason or "the sink failed the record")

    def __repr__(self) -> str:
        return f"SinkRecord(topic={self.topic!r}, key={self.key!r}, value={self.value!r})"


class Source:
    """Base class of sources; override :meth:`read` (and :meth:`open` / :meth:`close`)."""

    def open(self, config: dict[str, Any], context: Any) -> None:
        """Connect to the outside system; ``config`` is the ``--source-config``."""

    def read(self) -> Record | Sequence[Record] | None:
        """Return one or more records, or ``None``/``[]`` when nothing is there now.

        Block at most briefly (about 100 ms) when idle so that a stop is noticed.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the outside system."""


class Sink:
    """Base class of sinks; override :meth:`write` (and :meth:`open` / :meth:`close`)."""

    def open(self, config: dict[str, Any], context: Any) -> None:
        """Connect to the outside system; ``config`` is the ``--sink-config``."""

    def write(self, records: Sequence[SinkRecord]) -> None:
        """Write a batch; call ``ack()`` or ``fail(reason)`` on every record."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the outside system."""


class TransactionalSink(Sink):
    """A sink that commits its writes and the input progress in one transaction (EFFECTIVELY_ONCE)."""

    def committed_progress(self, sink_name: str) -> dict[str, str]:
        """The input progress text committed with the writes, per input partition."""
        raise NotImplementedError

    def write_with_progress(
        self,
        records: Sequence[SinkRecord],
        sink_name: str,
        progress: dict[str, tuple[str | None, str]],
    ) -> None:
        """Write every record and move each partition's progress from ``old`` to ``new``, atomically.

        Raises on any failure (nothing is then written); a stored progress that is not
        the expected ``old`` must raise :class:`engine.state.store.StateConflict`.
        """
        raise NotImplementedError
