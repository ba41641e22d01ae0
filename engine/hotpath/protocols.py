"""The contract both hot-path twins implement, as typing protocols.

Each hot-path module exists twice (see :mod:`engine.hotpath.select`): compiled from
``ext/<module>.pyx`` and as pure Python. The classes here state what every caller may
rely on. The pure twin's classes subclass them, and so do the ``.pyi`` stubs of the
compiled twin (``engine/hotpath/native/*.pyi``), so mypy checks each twin against the
same declarations; the ``*Module`` protocols describe a whole module, and
:class:`engine.hotpath.select.HotPath` holds one of each, so a caller's
``hot.serde.Codec(...)`` or ``hot.dispatch.Dispatcher(...)`` is type-checked. A
``TYPE_CHECKING`` block in :mod:`engine.hotpath.select` assigns every module of both
twins to its protocol: that is where mypy proves the twins conform.

Class protocols declare ``__init__`` so that constructing through ``type[Codec]``
(``hot.serde.Codec(kind)``) is checked; the ``*Type`` protocols restate each
constructor as a ``__call__`` so that the module check also proves each twin's
constructor accepts those arguments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

__all__ = [
    "AcksModule",
    "BatchOutcome",
    "BatchingModule",
    "Codec",
    "CountersModule",
    "DispatchModule",
    "Dispatcher",
    "DuplicateFilter",
    "InstanceStats",
    "OutputSender",
    "PendingAcks",
    "SerdeModule",
    "StateBuffer",
    "StatsModule",
]

#: ``send(payload, input_message)``: hands one encoded output to the producer.
SendOutput = Callable[[bytes, Any], None]


# -- serde ------------------------------------------------------------------------------


class Codec(Protocol):
    """Decode and encode message payloads of one kind (a ``KIND_*`` constant)."""

    __slots__ = ()

    kind: int
    user: Any

    def __init__(self, kind: int, user: Any = None) -> None: ...

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """Turn a payload into the value handed to the function."""
        ...

    def encode(self, value: Any) -> bytes:
        """Turn a function result into a payload."""
        ...


class CodecType(Protocol):
    """The constructor of a :class:`Codec`."""

    def __call__(self, kind: int, user: Any = None) -> Codec: ...


class SerdeModule(Protocol):
    """``engine.hotpath.serde`` and its compiled twin."""

    KIND_BYTES: int
    KIND_STRING: int
    KIND_JSON: int
    KIND_PICKLE: int
    KIND_IDENTITY: int
    KIND_USER: int

    @property
    def Codec(self) -> type[Codec]: ...

    def identity_decode(self, data: bytes | bytearray | memoryview) -> Any: ...

    def identity_encode(self, value: Any) -> bytes: ...


# -- stats ------------------------------------------------------------------------------


class InstanceStats(Protocol):
    """Counters for one function instance, total and for the current minute."""

    __slots__ = ()

    received: int
    processed_ok: int
    user_exceptions: int
    system_exceptions: int
    latency_sum_ms: float
    latency_count: int
    received_1min: int
    processed_ok_1min: int
    user_exceptions_1min: int
    system_exceptions_1min: int
    latency_sum_ms_1min: float
    latency_count_1min: int
    last_invocation_ms: int
    latest_user: deque[tuple[str, int]]
    latest_system: deque[tuple[str, int]]
    user_metrics: dict[str, list[float]]
    user_metrics_1min: dict[str, list[float]]

    def __init__(self) -> None: ...

    def add_received(self, count: int) -> None: ...

    def add_successes(self, count: int, latency_sum_ms: float) -> None: ...

    def add_user_exception(self, text: str) -> None: ...

    def add_system_exception(self, text: str) -> None: ...

    def set_last_invocation(self, epoch_ms: int) -> None: ...

    def record_metric(self, name: str, value: float) -> None: ...

    def roll_minute(self) -> None: ...

    def reset(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class InstanceStatsType(Protocol):
    """The constructor of :class:`InstanceStats`."""

    def __call__(self) -> InstanceStats: ...


class StatsModule(Protocol):
    """``engine.hotpath.stats`` and its compiled twin."""

    LATEST_EXCEPTIONS: int

    @property
    def InstanceStats(self) -> type[InstanceStats]: ...


# -- counters ---------------------------------------------------------------------------


class StateBuffer(Protocol):
    """Pending state changes of one batch: counter deltas, counter resets, value writes."""

    __slots__ = ()

    deltas: dict[str, int]
    resets: set[str]
    values: dict[str, bytes | None]

    def __init__(self) -> None: ...

    def incr(self, key: str, amount: int) -> None: ...

    def delete_counter(self, key: str) -> None: ...

    def counter_delta(self, key: str) -> tuple[int, bool]: ...

    def put(self, key: str, value: bytes | None) -> None: ...

    def pending_value(self, key: str) -> bytes | object | None: ...

    def is_empty(self) -> bool: ...

    def drain(self) -> tuple[dict[str, int], set[str], dict[str, bytes | None]]: ...


class StateBufferType(Protocol):
    """The constructor of :class:`StateBuffer`."""

    def __call__(self) -> StateBuffer: ...


class CountersModule(Protocol):
    """``engine.hotpath.counters`` and its compiled twin."""

    @property
    def MISSING(self) -> object: ...

    @property
    def StateBuffer(self) -> type[StateBuffer]: ...


# -- acks -------------------------------------------------------------------------------


class PendingAcks(Protocol):
    """Inputs waiting for their outputs to be persisted, keyed by a batch token."""

    __slots__ = ()

    def __init__(self) -> None: ...

    def add(self, consumer: Any, messages: list[Any]) -> int: ...

    def complete(self, token: int, ok: bool) -> int: ...

    def peek(self, token: int) -> list[Any]: ...

    def outstanding(self) -> int: ...


class PendingAcksType(Protocol):
    """The constructor of :class:`PendingAcks`."""

    def __call__(self) -> PendingAcks: ...


class DuplicateFilter(Protocol):
    """Drop messages at or before the last processed position of their partition."""

    __slots__ = ()

    def __init__(self) -> None: ...

    def admit(self, messages: list[Any]) -> tuple[list[Any], list[Any]]: ...

    def mark_failed(self, messages: list[Any]) -> None: ...

    def last_position(self, topic: str) -> tuple[int, int, int] | None: ...


class DuplicateFilterType(Protocol):
    """The constructor of :class:`DuplicateFilter`."""

    def __call__(self) -> DuplicateFilter: ...


class AcksModule(Protocol):
    """``engine.hotpath.acks`` and its compiled twin."""

    def ack_messages(self, consumer: Any, messages: list[Any], indices: list[int] | None = None) -> None: ...

    def nack_messages(self, consumer: Any, messages: list[Any], indices: list[int] | None = None) -> None: ...

    def position_of(self, msg: Any) -> tuple[int, int, int]: ...

    @property
    def PendingAcks(self) -> type[PendingAcks]: ...

    @property
    def DuplicateFilter(self) -> type[DuplicateFilter]: ...


# -- dispatch ---------------------------------------------------------------------------


class BatchOutcome(Protocol):
    """What happened to each message of a batch, by index into the batch."""

    __slots__ = ()

    sent: list[int]
    done: list[int]
    failed: list[tuple[int, int, str]]

    def __init__(self) -> None: ...


class BatchOutcomeType(Protocol):
    """The constructor of :class:`BatchOutcome`."""

    def __call__(self) -> BatchOutcome: ...


class Dispatcher(Protocol):
    """Run batches of messages through one user function."""

    __slots__ = ()

    function: Callable[..., Any]
    pass_context: bool
    context: Any
    codecs: dict[str, Codec]
    default_codec: Codec
    output_codec: Codec | None
    send: SendOutput | None
    stats: InstanceStats
    timeout_ms: int

    def __init__(
        self,
        function: Callable[..., Any],
        pass_context: bool,
        context: Any,
        codecs: dict[str, Codec],
        default_codec: Codec,
        output_codec: Codec | None,
        send: SendOutput | None,
        stats: InstanceStats,
        timeout_ms: int = 0,
    ) -> None: ...

    def run(self, messages: list[Any]) -> BatchOutcome: ...


class DispatcherType(Protocol):
    """The constructor of :class:`Dispatcher`."""

    def __call__(
        self,
        function: Callable[..., Any],
        pass_context: bool,
        context: Any,
        codecs: dict[str, Codec],
        default_codec: Codec,
        output_codec: Codec | None,
        send: SendOutput | None,
        stats: InstanceStats,
        timeout_ms: int = 0,
    ) -> Dispatcher: ...


class DispatchModule(Protocol):
    """``engine.hotpath.dispatch`` and its compiled twin."""

    FAIL_USER: int
    FAIL_SYSTEM: int

    def format_error(self, exc: BaseException) -> str: ...

    @property
    def BatchOutcome(self) -> type[BatchOutcome]: ...

    @property
    def Dispatcher(self) -> type[Dispatcher]: ...


# -- batching ---------------------------------------------------------------------------


class OutputSender(Protocol):
    """Queue outputs on one producer, deriving keys and properties from the input."""

    __slots__ = ()

    producer: Any
    builder: Any
    input_properties: bool
    forward_properties: bool
    forward_key: bool
    sequence_ids: bool
    count: int

    def __init__(
        self,
        producer: Any,
        builder: Any,
        *,
        input_properties: bool = False,
        forward_properties: bool = False,
        forward_key: bool = True,
        sequence_ids: bool = False,
    ) -> None: ...

    def __call__(self, payload: bytes, source: Any) -> None: ...


class OutputSenderType(Protocol):
    """The constructor of :class:`OutputSender`."""

    def __call__(
        self,
        producer: Any,
        builder: Any,
        *,
        input_properties: bool = False,
        forward_properties: bool = False,
        forward_key: bool = True,
        sequence_ids: bool = False,
    ) -> OutputSender: ...


class BatchingModule(Protocol):
    """``engine.hotpath.batching`` and its compiled twin."""

    INPUT_TOPIC_PROPERTY: str
    INPUT_MSG_ID_PROPERTY: str

    def sequence_id_of(self, source: Any) -> int: ...

    @property
    def OutputSender(self) -> type[OutputSender]: ...


# -- direct -----------------------------------------------------------------------------


class DirectModule(Protocol):
    """``engine.hotpath.direct`` and its compiled twin: views of the client's consumer and producer."""

    def attach(
        self,
        library: str,
        message_id_from_bytes: Callable[[bytes], Any],
        errors: dict[int, type],
        default_error: type,
    ) -> str | None: ...

    def attached(self) -> bool: ...

    def consumer_view(self, raw: Any, capsule: Any) -> Any: ...

    def producer_view(self, raw: Any, capsule: Any) -> Any: ...

    def input_message_id_property(self, source: Any) -> str: ...

    def send_record(
        self,
        producer: Any,
        builder: Any,
        payload: bytes,
        key: str | None,
        properties: dict[str, str] | None,
        event_time: int,
    ) -> None: ...
