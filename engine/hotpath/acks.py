"""Acknowledgement bookkeeping (pure-Python twin of ``ext/acks.pyx``).

Three jobs, all per message and so on the hot path:

* :func:`ack_messages` / :func:`nack_messages` acknowledge a list of messages on
  one consumer (the client has no list form in Python).
* :class:`PendingAcks` holds the inputs whose outputs are still in flight; they are
  acknowledged when the producer reports the batch persisted, negatively
  acknowledged when it failed. One completion per output batch suffices because a
  producer persists its messages in order.
* :class:`DuplicateFilter` drops redeliveries of messages already processed on an
  ordered (Failover/Exclusive) subscription. Brokers may resend whole entries to
  such consumers (pulsar-lite does on reconnect); a message processed again would
  double its effects. Positions of messages that failed are remembered so their
  legitimate retries still pass.
"""

from __future__ import annotations

from typing import Any

from engine.hotpath import protocols

__all__ = ["DuplicateFilter", "PendingAcks", "ack_messages", "nack_messages", "position_of"]


def ack_messages(consumer: Any, messages: list[Any], indices: list[int] | None = None) -> None:
    """Acknowledge ``messages`` (or only those at ``indices``) on ``consumer``."""
    ack = consumer.acknowledge
    if indices is None:
        for msg in messages:
            ack(msg)
    else:
        for i in indices:
            ack(messages[i])


def nack_messages(consumer: Any, messages: list[Any], indices: list[int] | None = None) -> None:
    """Negatively acknowledge ``messages`` (or those at ``indices``) for redelivery."""
    nack = consumer.negative_acknowledge
    if indices is None:
        for msg in messages:
            nack(msg)
    else:
        for i in indices:
            nack(messages[i])


def position_of(msg: Any) -> tuple[int, int, int]:
    """``(ledger, entry, batch index)`` of a message: its order within a partition."""
    mid = msg.message_id()
    return (mid.ledger_id(), mid.entry_id(), mid.batch_index())


class PendingAcks(protocols.PendingAcks):
    """Inputs waiting for their outputs to be persisted, keyed by a batch token."""

    __slots__ = ("_batches", "_next")

    def __init__(self) -> None:
        self._batches: dict[int, tuple[Any, list[Any]]] = {}
        self._next = 0

    def add(self, consumer: Any, messages: list[Any]) -> int:
        """Park ``messages`` of ``consumer``; returns the token to complete them with."""
        token = self._next
        self._next += 1
        self._batches[token] = (consumer, messages)
        return token

    def complete(self, token: int, ok: bool) -> int:
        """Ack (``ok``) or nack the batch ``token``; returns how many messages it held."""
        entry = self._batches.pop(token, None)
        if entry is None:
            return 0
        consumer, messages = entry
        if ok:
            ack_messages(consumer, messages)
        else:
            nack_messages(consumer, messages)
        return len(messages)

    def peek(self, token: int) -> list[Any]:
        """The messages parked under ``token`` (empty if none)."""
        entry = self._batches.get(token)
        return list(entry[1]) if entry is not None else []

    def outstanding(self) -> int:
        """How many messages are waiting."""
        return sum(len(m) for _, m in self._batches.values())


class DuplicateFilter(protocols.DuplicateFilter):
    """Drop messages at or before the last processed position of their partition."""

    __slots__ = ("_last", "_retry")

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int, int]] = {}
        self._retry: set[tuple[str, tuple[int, int, int]]] = set()

    def admit(self, messages: list[Any]) -> tuple[list[Any], list[Any]]:
        """Split ``messages`` into ``(fresh, duplicates)``; fresh ones become processed."""
        fresh: list[Any] = []
        dups: list[Any] = []
        last = self._last
        retry = self._retry
        for msg in messages:
            topic = msg.topic_name()
            pos = position_of(msg)
            seen = last.get(topic)
            if seen is not None and pos <= seen:
                key = (topic, pos)
                if key in retry:
                    retry.discard(key)
                    fresh.append(msg)
                else:
                    dups.append(msg)
                continue
            last[topic] = pos
            fresh.append(msg)
        return fresh, dups

    def mark_failed(self, messages: list[Any]) -> None:
        """Let the next delivery of these messages through again."""
        for msg in messages:
            self._retry.add((msg.topic_name(), position_of(msg)))

    def last_position(self, topic: str) -> tuple[int, int, int] | None:
        """The last processed position on ``topic``, if any."""
        return self._last.get(topic)
