"""How far an instance is behind its inputs, read on demand (a scrape, a status call).

The loop notes, once per batch, the newest input it took, and when a receive comes back
empty (nothing waiting: caught up). From that, on demand:

* **lag** (ms): how long ago the newest input the instance has taken was published, or 0
  once it has found its inputs empty. It grows while the instance is busy with older
  inputs or stuck in a call: what an alert on "falling behind" wants.
* **backlog** (entries, per topic): the entries published on the input topic after the
  newest one the instance took. It is read from the broker (the topic's last message id),
  so only for a subscription to one topic without partitions, and only while both ids are
  in one ledger; a batch of messages published together is one entry.

Nothing here runs per message: the loop stores one reference per batch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pulsar

__all__ = ["InputLag"]

log = logging.getLogger(__name__)

#: A backlog read is a broker round trip: it is reused for this long.
BACKLOG_CACHE_S = 1.0


class InputLag:
    """The newest input taken by one instance, and what follows from it."""

    def __init__(self, inputs: Any) -> None:
        self._inputs = inputs
        self._newest: Any = None
        self._caught_up = True
        self._backlog: dict[str, int] = {}
        self._backlog_read = 0.0

    # -- the loop (one call per receive) ----------------------------------------------------
    def took(self, msgs: list[Any]) -> None:
        """The loop took ``msgs`` (non-empty)."""
        self._newest = msgs[-1]
        self._caught_up = False

    def found_none(self) -> None:
        """A receive came back empty: nothing was waiting."""
        self._caught_up = True

    # -- readers (any thread) -----------------------------------------------------------------
    def lag_ms(self) -> float:
        """Time since the newest input taken was published; 0 when the inputs were last found empty."""
        newest = self._newest
        if self._caught_up or newest is None:
            return 0.0
        published = newest.publish_timestamp()
        return max(0.0, time.time() * 1000.0 - published) if published else 0.0

    def backlog(self) -> dict[str, int]:
        """Entries published after the newest input taken, per topic (may block on a broker call)."""
        inputs = self._inputs
        if self._caught_up and inputs.one_topic:
            return {inputs.topics[0]: 0}
        now = time.monotonic()
        if now - self._backlog_read < BACKLOG_CACHE_S:
            return dict(self._backlog)
        self._backlog_read = now
        self._backlog = self._read_backlog()
        return dict(self._backlog)

    def _read_backlog(self) -> dict[str, int]:
        inputs = self._inputs
        if not inputs.one_topic:
            return {}
        topic = inputs.topics[0]
        newest = self._newest
        if newest is None:
            return {topic: 0}
        try:
            last = inputs.last_message_id()
        except (pulsar.PulsarException, AttributeError) as exc:  # never written, broker away, reopening
            log.debug("%s: last message id of %s unknown: %s", inputs.spec.fqfn, topic, exc)
            return {}
        taken = newest.message_id()
        if taken.ledger_id() != last.ledger_id():
            return {}
        return {topic: max(0, last.entry_id() - taken.entry_id())}
