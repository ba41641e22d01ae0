"""ATMOST_ONCE: inputs are acknowledged on receipt, before the function runs.

A failure (in the function, decoding, publishing or committing state) is counted and
never retried, as Apache's instance does.
"""

from __future__ import annotations

from typing import Any

from engine.instance.settlement.at_least_once import duplicate_filter_for
from engine.instance.settlement.base import Settlement, SettlementParts
from engine.instance.settlement.flushes import FlushTracker

__all__ = ["AtMostOnce"]


class AtMostOnce(Settlement):
    """Acknowledge first; count what fails."""

    def __init__(self, parts: SettlementParts) -> None:
        super().__init__(parts)
        self._dedupe = duplicate_filter_for(parts)
        self.flushes = FlushTracker(parts.hot, parts.producers, parts.stats, lambda _msgs, _ok: None)
        self._state_buffer = parts.state_buffer
        self._output = parts.spec.output

    def reject(self, msg: Any, text: str) -> None:
        self.inputs.ack([msg])

    def poll(self) -> None:
        self.flushes.drain()
        super().poll()

    def settle(self, msgs: list[Any]) -> None:
        if self._dedupe is not None:
            msgs, dups = self._dedupe.admit(msgs)
            if dups:
                self.duplicates_dropped += len(dups)
                self.inputs.ack(dups)
            if not msgs:
                return
        self.inputs.ack(msgs)
        outcome = self.dispatcher.run(msgs)
        if not self._state_buffer.is_empty():
            deltas, resets, values = self._state_buffer.drain()
            store = self.parts.state_store
            assert store is not None  # the Context buffers state only with a store
            try:
                store.commit(self.spec.fqfn, deltas, resets, values)
            except Exception as exc:  # counted, as every ATMOST_ONCE failure
                text = f"state commit failed: {type(exc).__name__}: {exc}"
                for _ in msgs:
                    self.stats.add_system_exception(text)
        if outcome.sent:
            self.producers.touch(self._output)  # type: ignore[arg-type]
        self.flushes.flush(self.inputs.raw, None)
