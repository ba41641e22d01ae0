"""Hand encoded outputs to a producer (pure-Python twin of ``ext/batching.pyx``).

An :class:`OutputSender` builds one client message per output and queues it on the
producer with no per-message callback: the client batches them on the wire, and the
instance loop asks for a single completion per dispatched batch
(``flush_async``), which is enough because a producer persists in order.

Per-message extras, each off unless the function's config asks for it, because each
costs microseconds per message in the client:

* ``input_properties``: ``__pfn_input_topic__`` and ``__pfn_input_msg_id__``
  (base64 of the serialised input message id), as Apache's instance adds;
* ``forward_properties``: copy the input message's properties;
* ``forward_key``: give the output the input's partition key (on by default: key
  order and key-based batching downstream depend on it);
* ``sequence_ids``: give each output a producer sequence id derived from its input's
  position (:func:`sequence_id_of`), so a broker with de-duplication drops outputs
  sent again after a crash (EFFECTIVELY_ONCE).
"""

from __future__ import annotations

import base64
from typing import Any

from engine.hotpath import protocols

__all__ = ["INPUT_MSG_ID_PROPERTY", "INPUT_TOPIC_PROPERTY", "OutputSender", "sequence_id_of"]

#: Output property naming the topic the input came from.
INPUT_TOPIC_PROPERTY = "__pfn_input_topic__"
#: Output property holding the base64 of the serialised input message id.
INPUT_MSG_ID_PROPERTY = "__pfn_input_msg_id__"


def _payload_bytes(payload: Any) -> bytes:
    """A non-``bytes`` payload as ``bytes``: bytes-like ones are copied, others refused."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    raise TypeError(f"an output payload must be bytes, bytearray or memoryview, not {type(payload).__name__}")


def sequence_id_of(source: Any) -> int:
    """The producer sequence id of the output of input message ``source``.

    ``((ledger << 28 | entry) << 10) | (batch index + 1)``: increasing with the input's
    position in its partition, distinct for the messages of one batch entry (up to
    1,023 of them), and within a signed 64-bit id while ledger ids stay below 2**25.
    """
    mid = source.message_id()
    return (((mid.ledger_id() << 28) | mid.entry_id()) << 10) | (mid.batch_index() + 1)


class OutputSender(protocols.OutputSender):
    """Queue outputs on one producer, deriving keys and properties from the input.

    Parameters
    ----------
    producer
        The client's low-level producer (``send_async(message, callback)``).
    builder
        The client's message-builder class (``_pulsar.MessageBuilder``).
    """

    __slots__ = (
        "builder",
        "count",
        "forward_key",
        "forward_properties",
        "input_properties",
        "producer",
        "sequence_ids",
    )

    def __init__(
        self,
        producer: Any,
        builder: Any,
        *,
        input_properties: bool = False,
        forward_properties: bool = False,
        forward_key: bool = True,
        sequence_ids: bool = False,
    ) -> None:
        self.producer = producer
        self.sequence_ids = sequence_ids
        self.builder = builder
        self.input_properties = input_properties
        self.forward_properties = forward_properties
        self.forward_key = forward_key
        self.count = 0

    def __call__(self, payload: bytes, source: Any) -> None:
        """Queue ``payload`` as the output of input message ``source``.

        A ``bytearray`` or ``memoryview`` payload is copied to ``bytes``; any other
        type raises ``TypeError``.
        """
        if type(payload) is not bytes:
            payload = _payload_bytes(payload)
        mb = self.builder()
        mb.content(payload)
        if self.forward_key:
            key = source.partition_key()
            if key:
                mb.partition_key(key)
        if self.forward_properties:
            for name, value in source.properties().items():
                mb.property(name, value)
        if self.input_properties:
            mb.property(INPUT_TOPIC_PROPERTY, source.topic_name())
            mb.property(
                INPUT_MSG_ID_PROPERTY,
                base64.b64encode(source.message_id().serialize()).decode("ascii"),
            )
        if self.sequence_ids:
            mb.sequence_id(sequence_id_of(source))
        self.producer.send_async(mb.build(), None)
        self.count += 1
