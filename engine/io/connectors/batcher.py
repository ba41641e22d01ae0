"""Records gathered into batches of a fixed size for a sink, and the rest flushed after a delay.

A sink's ``write`` gets the records of one received batch, whose size follows the broker
and the input backlog, not the sink's ``batchSize``. As Apache's JDBC sink does, the
records are gathered: every full batch of ``batchSize`` is written at once (on the
caller's thread), and what is left waits at most ``timeoutMs`` before a flusher thread
writes it. The records are acked or failed by the write, from whichever thread runs it
(the Sink API allows that).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from engine.io.api import SinkRecord

__all__ = ["RecordBatcher"]

log = logging.getLogger(__name__)


class RecordBatcher:
    """Hands ``flush`` batches of ``batch_size`` records, and the remainder after ``linger_s``.

    Parameters
    ----------
    batch_size
        Records per flush.
    linger_s
        The longest a record waits for its batch to fill.
    flush
        Writes one batch; it settles every record of it (ack or fail), and must not raise.
    name
        The flusher thread's name.
    """

    def __init__(
        self, batch_size: int, linger_s: float, flush: Callable[[list[SinkRecord]], None], name: str
    ) -> None:
        self.batch_size = batch_size
        self.linger_s = linger_s
        self._flush = flush
        self._name = name
        self._pending: list[SinkRecord] = []
        #: When the oldest pending record came (monotonic).
        self._since = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, records: Sequence[SinkRecord]) -> None:
        """Take ``records``; write every batch that is full now."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the sink is closed")
            pending = self._pending
            fresh = not pending
            pending.extend(records)
            size = self.batch_size
            while len(pending) >= size:
                chunk, pending = pending[:size], pending[size:]
                self._pending = pending
                self._flush(chunk)
                fresh = True
            self._pending = pending
            if pending:
                if fresh:
                    self._since = time.monotonic()
                self._start_flusher()
                self._wake.notify()

    def _start_flusher(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with self._lock:
            while not self._closed:
                if not self._pending:
                    self._wake.wait()
                    continue
                # The remainder waits for its batch to fill, at most linger_s.
                due = self._since + self.linger_s - time.monotonic()
                if due > 0:
                    self._wake.wait(due)
                    continue
                chunk, self._pending = self._pending, []
                self._flush(chunk)

    def flush(self) -> None:
        """Write what is pending now."""
        with self._lock:
            chunk, self._pending = self._pending, []
            if chunk:
                self._flush(chunk)

    def close(self) -> None:
        """Write what is pending and stop the flusher thread."""
        self.flush()
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)
            if thread.is_alive():
                log.warning("%s: the flusher thread did not stop within 10 s", self._name)
