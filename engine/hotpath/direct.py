"""Direct client views (pure-Python twin of ``ext/direct.pyx``).

The compiled twin receives, sends and acknowledges through the client library's C API
on the consumer and producer the Python binding created, without a Python object per
call. This twin has no C API to call: its views are the binding's own objects, so an
instance on the pure hot path works exactly as it did before views existed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

__all__ = [
    "attach",
    "attached",
    "consumer_view",
    "input_message_id_property",
    "producer_view",
    "send_record",
]


def attach(
    library: str, message_id_from_bytes: Callable[[bytes], Any], errors: dict[int, type], default_error: type
) -> str | None:
    """Why the views cannot use the C API here: this twin never does."""
    return "the pure-Python hot path uses the client's Python objects"


def attached() -> bool:
    """False: this twin never attaches the C API."""
    return False


def consumer_view(raw: Any, capsule: Any) -> Any:
    """The binding's consumer itself."""
    return raw


def producer_view(raw: Any, capsule: Any) -> Any:
    """The binding's producer itself."""
    return raw


def send_record(
    producer: Any,
    builder: Any,
    payload: bytes,
    key: str | None,
    properties: dict[str, str] | None,
    event_time: int,
) -> None:
    """Queue a source's record on ``producer`` with one ``builder()`` message (no callback)."""
    mb = builder()
    mb.content(payload)
    if properties:
        for name, value in properties.items():
            mb.property(name, value)
    if key is not None:
        mb.partition_key(key)
    if event_time:
        mb.event_timestamp(event_time)
    producer.send_async(mb.build(), None)


def input_message_id_property(source: Any) -> str:
    """The ``__pfn_input_msg_id__`` value of ``source``: its serialized id in base64."""
    return base64.b64encode(source.message_id().serialize()).decode("ascii")
