"""``skipToLatest``: move a fresh subscription's consumer past the backlog it would otherwise read.

Apache's instance seeks its consumer to the latest message when it starts
(``consumer.seek(MessageId.latest)``, PR #17214), so inputs published while the function
was down are skipped. Where the broker's seek does not work (pulsar-lite acknowledges a
seek, then delivers nothing more on that consumer), the backlog is read and acknowledged
instead: every message published before the instance started is dropped, and the first
ones published since are handed back to be processed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pulsar

from engine.broker.capabilities import BrokerCapabilities

__all__ = ["now_ms", "skip_to_latest"]

log = logging.getLogger(__name__)

#: How long an empty receive means the backlog has been read.
_QUIET_MS = 200


def skip_to_latest(consumer: Any, raw: Any, capabilities: BrokerCapabilities, started_ms: int) -> list[Any]:
    """Skip the inputs published before ``started_ms`` (ms since the epoch); returns inputs to process.

    ``consumer`` is the client's consumer and ``raw`` its underlying consumer.
    Blocking: runs on the instance's thread.
    """
    if capabilities.seek_supported:
        consumer.seek(pulsar.MessageId.latest)
        return []
    capabilities.workaround(
        "skip-to-latest-by-reading",
        "seek does not work on this broker; the backlog published before the start is read and acknowledged",
    )
    skipped = 0
    while True:
        try:
            msg = raw.receive(_QUIET_MS)
        except pulsar.Timeout:
            break
        if msg.publish_timestamp() >= started_ms:
            log.info("skipToLatest: skipped %d inputs published before the start", skipped)
            return [msg]
        raw.acknowledge(msg)
        skipped += 1
    log.info("skipToLatest: skipped %d inputs published before the start", skipped)
    return []


def now_ms() -> int:
    """Milliseconds since the epoch, as message publish times count them."""
    return int(time.time() * 1000)
