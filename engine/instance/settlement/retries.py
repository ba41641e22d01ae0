"""Retries and dead letters: how a failed input is given another chance, or set aside.

:class:`RetryTracker` counts attempts of inputs that failed (the broker's redelivery
count, or our own count where a broker resets it on a reopened consumer) and forgets
an input once it is settled, so the table holds only inputs that are still failing.
:class:`DeadLetters` publishes an input whose retries are used up to its dead-letter
topic with its payload, key and properties and the error in ``__pfn_error__``.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pulsar

from engine.config.validation import FunctionSpec
from engine.instance.producers import ProducerPool

__all__ = ["DLQ_ERROR_PROPERTY", "DeadLetters", "RetryTracker"]

log = logging.getLogger(__name__)

#: Property of a dead-lettered message holding the last error.
DLQ_ERROR_PROPERTY = "__pfn_error__"


def _key(msg: Any) -> tuple[str, tuple[int, int, int]]:
    mid = msg.message_id()
    return msg.topic_name(), (mid.ledger_id(), mid.entry_id(), mid.batch_index())


class RetryTracker:
    """Attempts of failing inputs, against ``maxMessageRetries`` (``None``: retry forever)."""

    def __init__(self, max_retries: int | None) -> None:
        self.max_retries = max_retries
        self._attempts: dict[tuple[str, tuple[int, int, int]], int] = {}

    def __len__(self) -> int:
        return len(self._attempts)

    def may_retry(self, msg: Any) -> bool:
        """Count one more failed attempt of ``msg``; false once its retries are used up."""
        if self.max_retries is None:
            return True
        key = _key(msg)
        attempts = max(msg.redelivery_count(), self._attempts.get(key, 0))
        if attempts < self.max_retries:
            self._attempts[key] = attempts + 1
            return True
        self._attempts.pop(key, None)
        return False

    def forget(self, msgs: list[Any], indices: list[int] | None = None) -> None:
        """``msgs`` (or those at ``indices``) are settled: drop their attempt counts."""
        attempts = self._attempts
        if not attempts:
            return
        for msg in msgs if indices is None else (msgs[i] for i in indices):
            attempts.pop(_key(msg), None)


class DeadLetters:
    """Publishes inputs whose retries are used up, with the error that failed them last."""

    def __init__(self, spec: FunctionSpec, producers: ProducerPool, stats: Any) -> None:
        self._spec = spec
        self._pool = producers
        self._stats = stats
        #: How many inputs were dead-lettered (confirmed persisted).
        self.count = 0

    def topic_for(self, msg: Any) -> str:
        """The dead-letter topic of ``msg``: the configured one, or ``<input>-<subscription>-DLQ``."""
        if self._spec.dead_letter_topic:
            return self._spec.dead_letter_topic
        return f"{msg.topic_name()}-{self._spec.subscription_name.replace('/', '-')}-DLQ"

    def send(self, msg: Any, text: str) -> str | None:
        """Queue ``msg`` on its dead-letter topic; the topic, or ``None`` if the send failed."""
        topic = self.topic_for(msg)
        props = dict(msg.properties())
        props[DLQ_ERROR_PROPERTY] = text[-2000:]
        props["__pfn_input_topic__"] = msg.topic_name()
        props["__pfn_input_msg_id__"] = base64.b64encode(msg.message_id().serialize()).decode("ascii")
        props["__pfn_redelivery_count__"] = str(msg.redelivery_count())
        key = msg.partition_key() or None
        try:
            self._pool.get(topic).send_async(msg.data(), None, properties=props, partition_key=key)
        except pulsar.PulsarException as exc:
            self._stats.add_system_exception(f"dead-lettering to {topic} failed: {exc}")
            return None
        return topic
