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


class SinkRecord:
    """One input handed to a sink; call :meth:`ack` or :meth:`fail` exactly once.

    ``value`` (decoded) and ``data`` (raw) are plain attributes; ``key``, ``properties``,
    ``event_time``, ``topic`` and ``message_id`` are read from the input message when asked
    for, so a sink that needs only the value pays for nothing else.
    """

    __slots__ = ("_msg", "_properties", "_settle", "data", "index", "value")

    def __init__(
        self, value: Any, data: bytes, msg: Any, index: int, settle: Callable[[int, str | None], None]
    ) -> None:
        #: The decoded payload (by the sink's schema type or SerDe).
        self.value = value
        #: The raw payload.
        self.data = data
        self._msg = msg
        self._properties: dict[str, str] | None = None
        #: Position of the record in its batch.
        self.index = index
        self._settle = settle

    @property
    def key(self) -> str | None:
        """The message key, or ``None``."""
        return self._msg.partition_key() or None

    @property
    def properties(self) -> dict[str, str]:
        """The message properties."""
        if self._properties is None:
            self._properties = dict(self._msg.properties())
        return self._properties

    @property
    def event_time(self) -> int:
        """The event time in ms since the epoch (0: none)."""
        return int(self._msg.event_timestamp())

    @property
    def topic(self) -> str:
        """The input topic (partition) the record came from."""
        return str(self._msg.topic_name())

    @property
    def message_id(self) -> Any:
        """The input's message id."""
        return self._msg.message_id()

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
