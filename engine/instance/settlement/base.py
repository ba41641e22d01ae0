"""What every settlement works with, and what they share.

A settlement decides, for each received batch, when its inputs are acknowledged,
what happens to the ones that failed, and when the batch's state changes commit. The
instance loop hands it every batch (:meth:`Settlement.settle`) and calls
:meth:`Settlement.poll` once per turn; it never looks at a guarantee itself.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulsar

from engine.broker.capabilities import BrokerCapabilities
from engine.config.validation import FunctionSpec
from engine.hotpath import HotPath
from engine.instance.inputs import InputConsumer
from engine.instance.options import InstanceOptions
from engine.instance.producers import ProducerPool
from engine.instance.settlement.retries import DeadLetters, RetryTracker
from engine.state.store import StateStore

__all__ = ["Settlement", "SettlementParts"]

log = logging.getLogger(__name__)


@dataclass
class SettlementParts:
    """The parts of one instance a settlement acts through."""

    spec: FunctionSpec
    options: InstanceOptions
    capabilities: BrokerCapabilities
    hot: HotPath
    client: pulsar.Client
    inputs: InputConsumer
    dispatcher: Any
    producers: ProducerPool
    state_buffer: Any
    state_store: StateStore | None
    stats: Any
    #: ``(callback, result, message id)`` of user publish callbacks, filled on client threads.
    callbacks: deque[tuple[Callable[..., Any], Any, Any]]
    #: Set when the instance is asked to stop (waits end early).
    stopping: threading.Event


class Settlement:
    """Base of the settlements: counters, retries, dead letters, user callbacks."""

    def __init__(self, parts: SettlementParts) -> None:
        self.parts = parts
        self.spec = parts.spec
        self.inputs = parts.inputs
        self.dispatcher = parts.dispatcher
        self.producers = parts.producers
        self.stats = parts.stats
        self.retries = RetryTracker(parts.spec.max_message_retries)
        self.dead_letters = DeadLetters(parts.spec, parts.producers, parts.stats)
        #: Redelivered inputs dropped because they were processed already.
        self.duplicates_dropped = 0
        #: Inputs read back from the topic because the broker never delivered them again.
        self.inputs_read_back = 0

    @property
    def dead_lettered(self) -> int:
        """Inputs sent to a dead-letter topic and confirmed persisted."""
        return self.dead_letters.count

    @property
    def busy(self) -> bool:
        """True while inputs wait for outputs in flight."""
        return False

    def start(self) -> None:
        """Blocking start-up work, on the instance thread before the first batch."""
        return None

    def settle(self, msgs: list[Any]) -> None:
        """Run one received batch through the hot path and settle every input of it."""
        raise NotImplementedError

    def reject(self, msg: Any, text: str) -> None:
        """Set ``msg`` aside without running it: dead-letter it (or, at most once, only count it)."""
        raise NotImplementedError

    def poll(self) -> None:
        """Once per loop turn: apply completions, run user callbacks, let the inputs act."""
        self.inputs.poll(self.busy)
        self.run_callbacks()

    def run_callbacks(self) -> None:
        """Run the user publish callbacks that completed (on the instance thread)."""
        callbacks = self.parts.callbacks
        while callbacks:
            callback, result, msg_id = callbacks.popleft()
            try:
                callback(result, msg_id)
            except Exception:
                log.exception("publish callback of %s raised", self.spec.fqfn)

    def shutdown(self, deadline: float) -> None:
        """Flush every producer and wait, until ``deadline`` (monotonic), for inputs in flight."""
        self.producers.flush_all()
        self.run_callbacks()
