"""The ``pulsar.Context`` handed to user functions.

One Context per instance, reused for every message: the dispatcher points
``_message`` at the current input before each call. State calls go to the
instance's write-behind :class:`StateBuffer` (read-your-writes) over the state
store; ``publish`` queues on batching producers and the instance waits for them
before acknowledging the batch; user publish callbacks run on the instance thread,
never on the client's.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Any

import pulsar

from engine.config.topics import normalize_topic
from engine.function.serdes import DEFAULT_SERDE, codec_for
from engine.hotpath import HotPath
from engine.instance.producers import ProducerPool
from engine.security.reserved import ReservedTopic, is_reserved_topic
from engine.state.scoped import ScopedState, scoped_state
from engine.state.store import StateStore

__all__ = ["InstanceContext"]

_PARTITION = re.compile(r"-partition-(\d+)$")


class InstanceContext(pulsar.Context):
    """Implements every method of ``pulsar.Context`` for one function instance."""

    def __init__(
        self,
        *,
        hot: HotPath,
        tenant: str,
        namespace: str,
        name: str,
        function_id: str,
        function_version: str,
        instance_id: int,
        input_topics: list[str],
        output_topic: str | None,
        output_serde_class_name: str | None,
        user_config: dict[str, Any],
        secrets: dict[str, Any],
        secrets_provider: Any,
        logger: logging.Logger,
        stats: Any,
        producers: ProducerPool,
        state_store: StateStore | None,
        state_buffer: Any,
        acknowledge: Callable[[Any, str], None],
        pulsar_client: Any = None,
    ) -> None:
        self._message: Any = None
        #: ``(start, end)`` in ms of the window being processed (window functions only).
        self._window: tuple[int, int] | None = None
        self._hot = hot
        self._tenant = tenant
        self._namespace = namespace
        self._name = name
        self._function_id = function_id
        self._function_version = function_version
        self._instance_id = instance_id
        self._input_topics = list(input_topics)
        self._output_topic = output_topic
        # As Apache's: the configured class name, "" when none was given.
        self._output_serde_class_name = output_serde_class_name or ""
        self._pulsar_client = pulsar_client
        self._user_config = dict(user_config)
        self._secrets = dict(secrets)
        self._secrets_provider = secrets_provider
        self._logger = logger
        self._stats = stats
        self._pool = producers
        self._codecs: dict[str, Any] = {}
        # Reads of this function's own state only: the store itself is not reachable from here.
        self._stored = (
            None if state_store is None else scoped_state(state_store, f"{tenant}/{namespace}/{name}")
        )
        self._state = state_buffer
        self._acknowledge = acknowledge
        if state_store is not None:
            # The hot path's buffer takes the increments directly: one call per word of a
            # word count, with no Python frame of ours in between.
            self.incr_counter = state_buffer.incr  # type: ignore[method-assign]
        #: (callback, ok, message id) of user publish callbacks, run on the instance thread.
        self.callbacks: deque[tuple[Callable[..., Any], Any, Any]] = deque()

    # -- the current message -------------------------------------------------
    def get_message_id(self) -> Any:
        """Id of the message being processed (a ``_pulsar.MessageId``)."""
        return self._message.message_id()

    def get_message_key(self) -> str:
        """Key of the message being processed ("" when it has none, as in Apache)."""
        return str(self._message.partition_key())

    def get_message_eventtime(self) -> int:
        """Event time of the message (epoch ms, 0 when unset)."""
        return int(self._message.event_timestamp())

    def get_message_properties(self) -> dict[str, str]:
        """Properties of the message."""
        return dict(self._message.properties())

    def get_current_message_topic_name(self) -> str:
        """The topic (partition) the message came from."""
        return str(self._message.topic_name())

    def get_partition_key(self) -> str | None:
        """Partition key of the message."""
        return self._message.partition_key() or None

    def get_ordering_key(self) -> bytes | None:
        """Ordering key of the message, if any."""
        key = self._message.ordering_key()
        return key or None

    def get_message_partition_index(self) -> int:
        """Partition index of the message's topic, -1 when not partitioned."""
        match = _PARTITION.search(self._message.topic_name())
        return int(match.group(1)) if match else -1

    def get_message_sequence_id(self) -> int:
        """Sequence of the message within its partition: ``(ledger << 28) | entry``."""
        mid = self._message.message_id()
        return int((mid.ledger_id() << 28) | mid.entry_id())

    def get_window_start(self) -> int | None:
        """Start of the current window (epoch ms; the first input's timestamp for count windows)."""
        return self._window[0] if self._window is not None else None

    def get_window_end(self) -> int | None:
        """End of the current window (epoch ms; the last input's timestamp for count windows)."""
        return self._window[1] if self._window is not None else None

    # -- the function ----------------------------------------------------------
    def get_function_tenant(self) -> str:
        return self._tenant

    def get_function_namespace(self) -> str:
        return self._namespace

    def get_function_name(self) -> str:
        return self._name

    def get_function_id(self) -> str:
        return self._function_id

    def get_instance_id(self) -> str:
        """The instance id, a string as in Apache's Python context."""
        return str(self._instance_id)

    def get_function_version(self) -> str:
        return self._function_version

    def get_logger(self) -> logging.Logger:
        """The function's logger; with a log topic, records are published there too."""
        return self._logger

    def get_user_config_value(self, key: str) -> Any:
        """One value of the function's ``userConfig``, or ``None``."""
        return self._user_config.get(key)

    def get_user_config_map(self) -> dict[str, Any]:
        """The whole ``userConfig`` mapping."""
        return dict(self._user_config)

    def get_secret(self, secret_name: str) -> str | None:
        """The secret ``secret_name`` through the secrets provider, or ``None``."""
        if secret_name not in self._secrets:
            return None
        return self._secrets_provider.provide_secret(secret_name, self._secrets[secret_name])

    def record_metric(self, metric_name: str, metric_value: float) -> None:
        """Add an observation to a user metric (reported as ``pulsar_function_user_metric``)."""
        self._stats.record_metric(metric_name, float(metric_value))

    def get_input_topics(self) -> list[str]:
        return list(self._input_topics)

    def get_output_topic(self) -> str | None:
        return self._output_topic

    def get_output_serde_class_name(self) -> str:
        return self._output_serde_class_name

    def get_pulsar_client(self) -> Any:
        """The instance's ``pulsar.Client``."""
        return self._pulsar_client

    # -- publishing and acking -----------------------------------------------
    def publish(
        self,
        topic_name: str,
        message: Any,
        serde_class_name: str = DEFAULT_SERDE,
        properties: dict[str, str] | None = None,
        compression_type: Any = None,
        callback: Callable[..., Any] | None = None,
        message_conf: dict[str, Any] | None = None,
    ) -> None:
        """Publish ``message`` to ``topic_name``; the current input is acked only once it is persisted.

        ``message_conf`` may hold ``partition_key``, ``ordering_key``,
        ``event_timestamp`` and ``properties`` as in Apache's Context. A
        ``callback(result, message_id)`` runs on the instance thread.
        """
        topic = normalize_topic(topic_name)
        if is_reserved_topic(topic):
            raise ReservedTopic(f"publish: {topic!r} is in the worker's internal namespace")
        if serde_class_name == DEFAULT_SERDE and self._pool.schema_of(topic) is not None:
            payload = message  # the topic's producer encodes with its registered schema
        else:
            codec = self._codecs.get(serde_class_name)
            if codec is None:
                codec = codec_for(self._hot, serde_class_name)
                self._codecs[serde_class_name] = codec
            payload = codec.encode(message)
        conf = dict(message_conf or {})
        props = dict(conf.pop("properties", None) or {})
        if properties:
            props.update(properties)
        producer = self._pool.get(topic)
        self._pool.touch(topic)
        if callback is None:
            producer.send_async(payload, None, properties=props or None, **conf)
        else:
            queue = self.callbacks

            def done(result: Any, msg_id: Any) -> None:  # client thread: hand over only
                queue.append((callback, result, msg_id))

            producer.send_async(payload, done, properties=props or None, **conf)

    def ack(self, msgid: Any, topic: str) -> None:
        """Acknowledge ``msgid`` received on ``topic`` (MANUAL guarantee or autoAck=false)."""
        self._acknowledge(msgid, topic)

    # -- state -------------------------------------------------------------------
    def _store(self) -> ScopedState:
        if self._stored is None:
            raise RuntimeError("state is not available: this instance has no state store")
        return self._stored

    def incr_counter(self, key: str, amount: int) -> None:
        """Add ``amount`` to counter ``key`` (committed with the batch)."""
        self._store()
        self._state.incr(key, amount)

    def get_counter(self, key: str) -> int:
        """Counter ``key``, including this batch's uncommitted increments; 0 if absent."""
        delta, reset = self._state.counter_delta(key)
        if reset:
            return int(delta)
        stored = self._store().get_counter(key)
        return int((stored or 0) + delta)

    def del_counter(self, key: str) -> None:
        """Delete counter ``key``."""
        self._store()
        self._state.delete_counter(key)

    def put_state(self, key: str, value: Any) -> None:
        """Store ``value`` (bytes or str) under ``key`` (committed with the batch)."""
        self._store()
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif value is not None and not isinstance(value, bytes):
            value = bytes(value)
        self._state.put(key, value)

    def get_state(self, key: str) -> bytes | None:
        """The value under ``key``, including this batch's writes; ``None`` if absent."""
        pending = self._state.pending_value(key)
        if pending is not self._hot.counters.MISSING:
            return pending
        return self._store().get_value(key)

    def del_state(self, key: str) -> None:
        """Delete the value under ``key``."""
        self._store()
        self._state.put(key, None)
