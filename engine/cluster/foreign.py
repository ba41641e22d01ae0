"""Refuse to share the cluster topics with another kind of functions worker.

Magnetar's internal topics have the names Apache Pulsar's functions worker uses
(``metadata``, ``assignments`` in ``public/functions``). Pointed at a broker whose own
functions worker runs, both would write the same topics and corrupt each other's
state. Every record Magnetar writes there is keyed and carries an ``epoch`` property
(metadata records also a ``version``); Apache's records (``ServiceRequest`` or bare
``FunctionMetaData``/``Assignment`` messages) carry neither. :func:`check_no_foreign_worker`
reads the first and the last records of both topics and raises
:class:`ForeignWorkerError` naming the topic, the record and the way out.
"""

from __future__ import annotations

from typing import Any

import pulsar

from engine.cluster.topic_io import position_key, read_range, topic_end
from engine.cluster.topics import ClusterTopics

__all__ = ["ForeignWorkerError", "check_no_foreign_worker"]

#: Records read from the start of each topic.
_HEAD = 16


class ForeignWorkerError(RuntimeError):
    """The cluster topics hold records another functions worker wrote."""


def _why_foreign(msg: Any, required: tuple[str, ...]) -> str | None:
    props = msg.properties()
    missing = [p for p in required if p not in props]
    if not msg.partition_key():
        return "it has no key"
    if missing:
        return "it lacks the " + " and ".join(repr(p) for p in missing) + " properties Magnetar writes"
    return None


def _records(client: pulsar.Client, topic: str) -> list[Any]:
    end = topic_end(client, topic)
    if end is None:
        return []
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    head: list[Any] = []
    try:
        while len(head) < _HEAD:
            try:
                msg = reader.read_next(5000)
            except pulsar.Timeout:
                break
            head.append(msg)
            if position_key(msg.message_id())[:2] >= position_key(end)[:2]:
                return head
    finally:
        reader.close()
    tail, _ = read_range(client, topic, end, end, inclusive=True)
    return head + tail


def check_no_foreign_worker(client: pulsar.Client, topics: ClusterTopics) -> None:
    """Raise :class:`ForeignWorkerError` when the metadata or assignments topic holds foreign records."""
    for topic, required in ((topics.metadata, ("version", "epoch")), (topics.assignments, ("epoch",))):
        for msg in _records(client, topic):
            why = _why_foreign(msg, required)
            if why is not None:
                raise ForeignWorkerError(
                    f"{topic} holds a record Magnetar did not write (message {msg.message_id()}: {why}); "
                    "another functions worker (such as Apache Pulsar's) uses these topics. Give Magnetar "
                    "a namespace of its own with --functions-namespace (for example public/magnetar), "
                    "or stop the other worker."
                )
