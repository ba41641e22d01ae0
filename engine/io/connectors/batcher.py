"""Records gathered into batches of a fixed size for a sink, written on a thread of their own.

A sink's ``write`` gets the records of one received batch, whose size follows the broker
and the input backlog, not the sink's ``batchSize``. As Apache's JDBC sink does, the
records are queued and a flusher thread writes them: every full batch of ``batchSize`` at
once, what is left once it has waited ``timeoutMs``. The instance thread meanwhile
receives and decodes the next inputs, so the database's round trips overlap them. The
queue holds at most :data:`MAX_PENDING_BATCHES` batches; ``write`` waits for room beyond
that. The records are acked or failed by the flusher thread (the Sink API allows that).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from engine.io.api import SinkRecord

__all__ = ["MAX_PENDING_BATCHES", "RecordBatcher"]

log = logging.getLogger(__name__)

#: Full batches the queue may hold before ``add`` waits for the flusher.
MAX_PENDING_BATCHES = 4


class RecordBatcher:
    """Hands ``flush`` batches of ``batch_size`` records on its thread, and the rest after ``linger_s``.

    Parameters
    ----------
    batch_size
        Records per flush.
    linger_s
        The longest a record waits for its batch to fill.
    flush
        Writes one batch; it settles every record of it (ack or fail).
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
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, records: Sequence[SinkRecord]) -> None:
        """Queue ``records`` (waiting while the queue is full); the flusher writes them."""
        limit = MAX_PENDING_BATCHES * self.batch_size
        with self._cond:
            while len(self._pending) >= limit and not self._closed:
                self._cond.wait(0.1)
            if self._closed:
                raise RuntimeError("the sink is closed")
            if not self._pending:
                self._since = time.monotonic()
            self._pending.extend(records)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _next(self) -> list[SinkRecord] | None:
        """The next batch to write (waiting for it); ``None`` once closed with nothing left."""
        size = self.batch_size
        while True:
            pending = self._pending
            if len(pending) >= size or (pending and self._closed):
                chunk, self._pending = pending[:size], pending[size:]
                if self._pending:
                    self._since = time.monotonic()
                return chunk
            if self._closed:
                return None
            if not pending:
                self._cond.wait()
                continue
            due = self._since + self.linger_s - time.monotonic()
            if due <= 0:
                self._pending = []
                return pending
            self._cond.wait(due)

    def _run(self) -> None:
        while True:
            with self._cond:
                chunk = self._next()
                self._cond.notify_all()  # room for a waiting add
            if chunk is None:
                return
            try:
                self._flush(chunk)
            except Exception as exc:  # the writer broke its promise to settle: fail what it left
                log.exception("%s: writing a batch failed", self._name)
                for record in chunk:
                    record.fail(f"writing the batch failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Write what is queued, then stop the flusher thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(30.0)
            if thread.is_alive():
                log.warning("%s: the flusher thread did not finish within 30 s", self._name)
