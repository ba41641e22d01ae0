"""``file``: a source that reads every line of the files of a directory as one message each.

Config keys (Apache's names): ``inputDirectory`` (required), ``recurse`` (true),
``keepFile`` (false: a file is deleted once every line is persisted), ``fileFilter``
(a regex on the file name, default ``[^.].*``), ``pathFilter`` (a regex the relative
directory must match), ``minimumFileAge`` / ``maximumFileAge`` (ms), ``minimumSize`` /
``maximumSize`` (bytes), ``ignoreHiddenFiles`` (true), ``pollingInterval`` (ms, 10000),
``processedFileSuffix`` (with ``keepFile`` false: rename instead of delete),
``numWorkers`` (accepted; one instance reads one file at a time).

A file is never re-emitted after a restart: the byte offset up to which its lines are
persisted is recorded in the state store (key ``file:<path>``), moved on to the end of a
read batch (up to 1,000 lines) only after the broker persisted every line of it and of
every batch before. A restart resumes each file at that offset; a file that grew is read
on from it. A process killed with a batch in flight reads that batch again (at least
once).
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from typing import Any, BinaryIO

from engine.io.api import Record, Source
from engine.io.config import ConnectorConfig

__all__ = ["FileSource"]

_BATCH = 1000


class _Reading:
    """One file being read: where reading is, and the lines in flight."""

    def __init__(self, path: str, handle: BinaryIO, offset: int, generation: int) -> None:
        self.path = path
        self.handle = handle
        self.committed = offset
        self.line = 0
        #: One slot per batch in flight, in send order: [end offset, all acked, acks to come].
        self.in_flight: deque[list[Any]] = deque()
        self.eof = False
        self.generation = generation


class FileSource(Source):
    """Watches ``inputDirectory`` and emits each line of each file once."""

    def open(self, config: dict[str, Any], context: Any) -> None:
        cfg = ConnectorConfig(config, "sourceConfig")
        self.directory = cfg.string("inputDirectory", required=True) or ""
        self.recurse = cfg.boolean("recurse", True)
        self.keep_file = cfg.boolean("keepFile", False)
        file_filter = cfg.string("fileFilter", "[^\\.].*") or ".*"
        path_filter = cfg.string("pathFilter", None)
        self.min_age_ms = cfg.integer("minimumFileAge", 0)
        self.max_age_ms = cfg.integer("maximumFileAge", 0)
        self.min_size = cfg.integer("minimumSize", 1)
        self.max_size = cfg.integer("maximumSize", 0)
        self.ignore_hidden = cfg.boolean("ignoreHiddenFiles", True)
        self.polling_s = cfg.integer("pollingInterval", 10000) / 1000.0
        self.suffix = cfg.string("processedFileSuffix", None)
        cfg.integer("numWorkers", 1, minimum=1)
        try:
            self.file_filter = re.compile(file_filter)
        except re.error as exc:
            cfg._bad("fileFilter", file_filter, f"a regular expression ({exc})")
        try:
            self.path_filter = re.compile(path_filter) if path_filter else None
        except re.error as exc:
            cfg._bad("pathFilter", path_filter, f"a regular expression ({exc})")
        if self.directory and not os.path.isdir(self.directory):
            cfg._bad("inputDirectory", self.directory, "an existing directory")
        cfg.check()
        if context is None:
            raise ValueError("the file source records what it read in the state store: it needs a Context")
        self.context = context
        self.queue: deque[str] = deque()
        self.current: _Reading | None = None
        self.finishing: list[_Reading] = []
        self.next_poll = 0.0
        self.generation = 0

    # -- discovery -------------------------------------------------------------------------------
    def _candidates(self) -> list[str]:
        found: list[str] = []
        now_ms = time.time() * 1000
        for root, dirs, files in os.walk(self.directory):
            rel = os.path.relpath(root, self.directory)
            if self.ignore_hidden:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
            if not self.recurse:
                dirs[:] = []
            if self.path_filter is not None and rel != "." and not self.path_filter.fullmatch(rel):
                continue
            for name in sorted(files):
                if self.ignore_hidden and name.startswith("."):
                    continue
                if self.suffix and name.endswith(self.suffix):
                    continue
                if not self.file_filter.fullmatch(name):
                    continue
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                age = now_ms - st.st_mtime * 1000
                if st.st_size < self.min_size or (self.max_size and st.st_size > self.max_size):
                    continue
                if age < self.min_age_ms or (self.max_age_ms and age > self.max_age_ms):
                    continue
                if st.st_size > self._offset(path):
                    found.append(path)
        return sorted(found)

    def _offset(self, path: str) -> int:
        stored = self.context.get_state(f"file:{path}")
        if not stored:
            return 0
        offset = int(stored)
        return offset if offset <= os.path.getsize(path) else 0  # a new, shorter file of that name

    def _poll(self) -> None:
        busy = {r.path for r in self.finishing} | ({self.current.path} if self.current else set())
        queued = set(self.queue)
        for path in self._candidates():
            if path not in busy and path not in queued:
                self.queue.append(path)

    # -- reading ---------------------------------------------------------------------------------
    def read(self) -> list[Record] | None:
        self._finish()
        if self.current is None:
            if not self.queue and time.monotonic() >= self.next_poll:
                self.next_poll = time.monotonic() + self.polling_s
                self._poll()
            if not self.queue:
                time.sleep(min(0.1, max(0.0, self.next_poll - time.monotonic())))
                return None
            path = self.queue.popleft()
            try:
                offset = self._offset(path)
                handle = open(path, "rb")  # kept open across reads
            except FileNotFoundError:
                return None
            handle.seek(offset)
            self.generation += 1
            self.current = _Reading(path, handle, offset, self.generation)
        return self._lines(self.current)

    def _lines(self, reading: _Reading) -> list[Record]:
        """The next lines of ``reading`` (up to a batch), all settled through one slot."""
        records: list[Record] = []
        handle = reading.handle
        path = reading.path
        name = os.path.basename(path)
        readline = handle.readline
        # One slot for the whole batch: [end offset, all acked, acks still to come].
        slot: list[Any] = [0, False, 0]
        ack, fail = self._acker(reading, slot), self._failer(reading)
        number = reading.line
        while len(records) < _BATCH:
            line = readline()
            if line and not line.endswith(b"\n") and self._being_written(handle):
                handle.seek(-len(line), os.SEEK_CUR)  # a last line still being written: read it later
                line = b""
            if not line:
                reading.eof = True
                break
            number += 1
            records.append(
                Record(
                    line.rstrip(b"\r\n"),
                    None,
                    {"file.path": path, "file.name": name, "file.line": str(number)},
                    0,
                    None,
                    ack,
                    fail,
                )
            )
        reading.line = number
        if records:
            slot[0], slot[2] = handle.tell(), len(records)
            reading.in_flight.append(slot)
        if reading.eof:
            handle.close()
            self.finishing.append(reading)
            self.current = None
        return records

    @staticmethod
    def _being_written(handle: BinaryIO) -> bool:
        """True if the file changed within the last second (its unterminated last line may grow)."""
        return time.time() - os.fstat(handle.fileno()).st_mtime < 1.0

    def _acker(self, reading: _Reading, slot: list[Any]) -> Any:
        """The ``ack`` of every record of one batch: the batch's end offset is committed
        once all of them (and every batch before) are persisted."""

        def ack() -> None:
            if reading.generation == -1:  # the file is being read again from its committed offset
                return
            slot[2] -= 1
            if slot[2] > 0:
                return
            slot[1] = True
            moved = False
            while reading.in_flight and reading.in_flight[0][1]:
                reading.committed = reading.in_flight.popleft()[0]
                moved = True
            if moved:
                self.context.put_state(f"file:{reading.path}", str(reading.committed))

        return ack

    def _failer(self, reading: _Reading) -> Any:
        def fail(reason: str) -> None:
            # Lines after the committed offset are read again; earlier acks of this pass are dropped.
            if reading.generation == -1:
                return
            self.context.get_logger().warning(
                "file %s: a line failed (%s); reading it again", reading.path, reason
            )
            reading.generation = -1
            reading.in_flight.clear()
            if self.current is reading:
                reading.handle.close()
                self.current = None
            if reading in self.finishing:
                self.finishing.remove(reading)
            self.queue.appendleft(reading.path)

        return fail

    def _finish(self) -> None:
        """Delete (or rename) files whose every line is persisted."""
        for reading in list(self.finishing):
            if reading.in_flight:
                continue
            self.finishing.remove(reading)
            if self.keep_file:
                continue
            try:
                if self.suffix:
                    os.rename(reading.path, reading.path + self.suffix)
                else:
                    os.remove(reading.path)
            except FileNotFoundError:
                pass  # removed by someone else: nothing left to do
            self.context.del_state(f"file:{reading.path}")

    def close(self) -> None:
        if self.current is not None:
            self.current.handle.close()
