"""The instance's subscription to its inputs: batches in, acks and negative acks out.

:class:`InputConsumer` subscribes as Apache's instance does (one subscription
``tenant/namespace/name``, its type derived from the config, consumer properties
naming the function and instance), hands the loop whole batches of the client's raw
messages, and acknowledges through the hot path. How unacknowledged inputs come back
is a policy chosen once from the broker's capabilities:

* :class:`BrokerRedelivers`: the broker honours negative acks and redelivery requests
  (Apache Pulsar, and every broker on Shared / Key_Shared subscriptions);
* :class:`ReopenToRedeliver`: the broker ignores them on ordered (Failover/Exclusive)
  subscriptions (pulsar-lite), so the consumer is reopened, which makes every broker
  deliver the unacknowledged inputs again, in order.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

import pulsar

from engine.broker.adapter import last_message_id, raw_consumer
from engine.broker.capabilities import BrokerCapabilities
from engine.broker.direct import consumer_view
from engine.broker.skip_to_latest import now_ms, skip_to_latest
from engine.config.patterns import combined_pattern
from engine.config.topics import normalize_topic
from engine.config.validation import FunctionSpec
from engine.hotpath import HotPath

__all__ = ["BrokerLacksFeature", "BrokerRedelivers", "InputConsumer", "RedeliveryPolicy", "ReopenToRedeliver"]

log = logging.getLogger(__name__)

_CONSUMER_TYPES = {
    "SHARED": pulsar.ConsumerType.Shared,
    "FAILOVER": pulsar.ConsumerType.Failover,
    "KEY_SHARED": pulsar.ConsumerType.KeyShared,
}

_PARTITION = re.compile(r"-partition-\d+$")

#: How long the loop blocks for a first message when it is idle.
IDLE_WAIT_MS = 100


class BrokerLacksFeature(RuntimeError):
    """The function needs something the broker does not do (see :mod:`engine.broker.capabilities`)."""


class RedeliveryPolicy(Protocol):
    """How unacknowledged inputs are made to arrive again."""

    def after_nack(self, inputs: InputConsumer) -> None:
        """Called after inputs were negatively acknowledged."""

    def redeliver_unacked(self, inputs: InputConsumer) -> None:
        """Have every unacknowledged input delivered again, in order, now."""

    def poll(self, inputs: InputConsumer, busy: bool) -> None:
        """Called every loop turn; ``busy`` while outputs are in flight."""


class BrokerRedelivers:
    """The broker redelivers negatively acknowledged inputs by itself."""

    def after_nack(self, inputs: InputConsumer) -> None:
        return None

    def redeliver_unacked(self, inputs: InputConsumer) -> None:
        inputs.raw.redeliver_unacknowledged_messages()
        inputs.notify_redeliver()

    def poll(self, inputs: InputConsumer, busy: bool) -> None:
        return None


class ReopenToRedeliver:
    """Reopen the consumer after a negative ack, once the redelivery delay passed and nothing is in flight.

    The broker ignores negative acks and redelivery requests on this ordered
    subscription; a new consumer is handed every unacknowledged input again.
    """

    def __init__(self, delay_s: float, capabilities: BrokerCapabilities) -> None:
        self._delay_s = delay_s
        self._capabilities = capabilities
        self._reopen_at = 0.0

    def after_nack(self, inputs: InputConsumer) -> None:
        if not self._reopen_at:
            self._reopen_at = time.monotonic() + self._delay_s

    def redeliver_unacked(self, inputs: InputConsumer) -> None:
        self._reopen(inputs)

    def poll(self, inputs: InputConsumer, busy: bool) -> None:
        if self._reopen_at and not busy and time.monotonic() >= self._reopen_at:
            self._reopen(inputs)

    def _reopen(self, inputs: InputConsumer) -> None:
        self._reopen_at = 0.0
        self._capabilities.workaround(
            "reopen-consumer-to-redeliver",
            "negative acks are ignored on Failover/Exclusive subscriptions; "
            "reopening the consumer delivers unacked inputs again",
        )
        inputs.reopen()


class InputConsumer:
    """One subscription to all the inputs of one instance.

    Parameters
    ----------
    client
        A connected ``pulsar.Client``.
    spec
        The validated function.
    instance_id
        The instance's id (consumer name and properties).
    hot
        The hot path whose ``acks`` module acknowledges.
    capabilities
        What the broker does (chooses the redelivery policy).
    batch_max_messages, batch_timeout_ms
        The ``batch_receive`` policy.
    nack_delay_ms
        Redelivery delay after a negative ack (``timeoutMs`` when set).
    """

    def __init__(
        self,
        client: pulsar.Client,
        spec: FunctionSpec,
        instance_id: int,
        hot: HotPath,
        capabilities: BrokerCapabilities,
        batch_max_messages: int = 1000,
        batch_timeout_ms: int = 2,
        nack_delay_ms: int = 1000,
    ) -> None:
        self.client = client
        self._capabilities = capabilities
        #: Inputs read before the loop's first receive (``skipToLatest`` on a broker without seek).
        self._pending: list[Any] = []
        self._skipped_to_latest = False
        self.spec = spec
        self.instance_id = instance_id
        self._hot = hot
        self._acks = hot.acks
        #: Read through the compiled hot path's direct view (set before :meth:`open`).
        self.direct = False
        self._batch_max = batch_max_messages
        self._batch_timeout_ms = batch_timeout_ms
        self.nack_delay_ms = spec.timeout_ms or nack_delay_ms
        self._subscription: Any = None
        #: The client's raw consumer; replaced when the subscription is reopened.
        self.raw: Any = None
        ordered = spec.subscription_type == "FAILOVER"
        self.redelivery: RedeliveryPolicy = (
            ReopenToRedeliver(self.nack_delay_ms / 1000.0, capabilities)
            if ordered and capabilities.nack_ignored_on_ordered
            else BrokerRedelivers()
        )
        self.topics = [i.topic for i in spec.inputs]
        #: True once subscribed to a single topic that has no partitions.
        self.one_topic = False
        #: The ``pulsar.schema.Schema`` registered on subscribing (``None``: none), set before :meth:`open`.
        self.schema: Any = None
        #: ``subscribe`` options for decryption (:mod:`engine.instance.crypto`), set before :meth:`open`.
        self.crypto_options: dict[str, Any] = {}
        #: Called when every unacknowledged input is about to be delivered again.
        self.on_redeliver: list[Callable[[], None]] = []

    # -- subscription ----------------------------------------------------------------------
    def open(self) -> None:
        """Subscribe (blocking; runs on the instance thread).

        With ``skipToLatest`` the first open of the instance skips the inputs published
        before it started, as Apache's instance does on every start (a reopen to redeliver
        does not skip).
        """
        started = now_ms()
        self._subscription = self._subscribe()
        raw = raw_consumer(self._subscription)
        self.raw = consumer_view(self._hot, raw) if self.direct else raw
        self.one_topic = self._has_one_topic()
        if self.spec.skip_to_latest and not self._skipped_to_latest:
            self._skipped_to_latest = True
            self._pending = skip_to_latest(self._subscription, self.raw, self._capabilities, started)

    def _has_one_topic(self) -> bool:
        """True when every input comes from one topic without partitions."""
        inputs = self.spec.inputs
        if len(inputs) != 1 or inputs[0].is_regex_pattern:
            return False
        try:
            partitions = self.client.get_topic_partitions(inputs[0].topic)
        except pulsar.PulsarException as exc:
            log.debug("%s: partitions of %s unknown: %s", self.spec.fqfn, inputs[0].topic, exc)
            return False
        return len(partitions) == 1 and not _PARTITION.search(partitions[0])

    def _subscribe(self) -> Any:
        spec = self.spec
        topics = [i.topic for i in spec.inputs if not i.is_regex_pattern]
        patterns = [i.topic for i in spec.inputs if i.is_regex_pattern]
        queue = max((i.receiver_queue_size or 0 for i in spec.inputs), default=0) or max(
            1000, self._batch_max
        )
        props = {"application": "magnetar", "id": spec.fqfn, "instance_id": str(self.instance_id)}
        for i in spec.inputs:
            props.update(i.consumer_properties)
        kwargs: dict[str, Any] = dict(
            consumer_type=_CONSUMER_TYPES[spec.subscription_type],
            initial_position=(
                pulsar.InitialPosition.Earliest
                if spec.subscription_position == "Earliest"
                else pulsar.InitialPosition.Latest
            ),
            receiver_queue_size=queue,
            consumer_name=f"{spec.fqfn}:{self.instance_id}",
            negative_ack_redelivery_delay_ms=self.nack_delay_ms,
            properties=props,
            batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(
                self._batch_max, -1, self._batch_timeout_ms
            ),
        )
        if spec.timeout_ms and spec.timeout_ms >= 10000:
            kwargs["unacked_messages_timeout_ms"] = spec.timeout_ms
        if self.schema is not None:
            kwargs["schema"] = self.schema
        kwargs.update(self.crypto_options)
        if patterns:
            if not self._capabilities.regex_subscriptions:
                raise BrokerLacksFeature(
                    f"{spec.fqfn}: the broker ({self._capabilities.kind}) has no topic-pattern "
                    f"subscriptions; list the input topics instead of {patterns}"
                )
            pattern = re.compile(combined_pattern(topics, patterns))
            return self.client.subscribe(pattern, spec.subscription_name, **kwargs)
        return self.client.subscribe(
            topics if len(topics) > 1 else topics[0], spec.subscription_name, **kwargs
        )

    def reopen(self) -> None:
        """Close and subscribe again: the broker hands every unacknowledged input out again."""
        self._close_consumer()
        self.open()
        self.notify_redeliver()

    def notify_redeliver(self) -> None:
        """Tell the listeners that every unacknowledged input comes again."""
        for listener in self.on_redeliver:
            listener()

    def close(self) -> None:
        """Close the subscription's consumer (the subscription stays)."""
        self._close_consumer()

    def _close_consumer(self) -> None:
        self._pending = []  # unacknowledged: the broker hands them to the next consumer
        consumer, self._subscription = self._subscription, None
        if consumer is None:
            return
        try:
            consumer.close()
        except pulsar.PulsarException as exc:  # already closed by the client, or the broker is gone
            log.debug("%s:%s: closing the input consumer: %s", self.spec.fqfn, self.instance_id, exc)

    # -- receiving ---------------------------------------------------------------------------
    def receive(self, wait_first: bool) -> list[Any]:
        """The next batch; with ``wait_first`` block up to ``IDLE_WAIT_MS`` for its first message."""
        raw = self.raw
        if self._pending:
            pending, self._pending = self._pending, []
            return [*pending, *raw.batch_receive()]
        if not wait_first:
            return list(raw.batch_receive())
        try:
            first = raw.receive(IDLE_WAIT_MS)
        except pulsar.Timeout:
            return []
        return [first, *raw.batch_receive()]

    def last_message_id(self) -> Any:
        """The id of the last message on the (single) input topic."""
        return last_message_id(self._subscription)

    # -- settling ------------------------------------------------------------------------------
    def ack(self, msgs: list[Any], indices: list[int] | None = None) -> None:
        """Acknowledge ``msgs`` (or those at ``indices``)."""
        self._acks.ack_messages(self.raw, msgs, indices)

    def nack(self, msgs: list[Any]) -> None:
        """Negatively acknowledge ``msgs``: they arrive again after the redelivery delay."""
        self._acks.nack_messages(self.raw, msgs)
        self.redelivery.after_nack(self)

    def ack_id(self, msg_id: Any, topic: str) -> None:
        """Acknowledge by message id, for ``context.ack`` (MANUAL); ``topic`` must be an input."""
        if len(self.topics) > 1:
            base = _PARTITION.sub("", topic)
            if (
                topic not in self.topics
                and base not in self.topics
                and normalize_topic(base) not in self.topics
            ):
                raise ValueError(f"ack: {topic!r} is not an input topic of this function")
        self._subscription.acknowledge(msg_id)

    def redeliver_unacked(self) -> None:
        """Have every unacknowledged input delivered again, in order."""
        self.redelivery.redeliver_unacked(self)

    def poll(self, busy: bool) -> None:
        """Once per loop turn: let the redelivery policy act."""
        self.redelivery.poll(self, busy)
