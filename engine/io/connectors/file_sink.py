"""``file``: a sink that appends each record as one line to a file, rotating it by size.

Config keys: ``outputDirectory`` (required), ``fileName`` (default
``<sink name>-<instance id>.txt``), ``maxFileSize`` (bytes, default 64 MiB; a full file
is renamed ``<fileName>.<n>`` and a new one started), ``fsync`` (true: a batch is
acked only once it is on disk). Files are created private to their owner (0o600).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from engine.io.api import Sink, SinkRecord
from engine.io.config import ConnectorConfig

__all__ = ["FileSink"]


def _text(record: SinkRecord) -> bytes:
    value = record.value
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        data = record.data
    return data.replace(b"\n", b"\\n") + b"\n"


class FileSink(Sink):
    """Appends lines; the batch is acked once written (and fsynced)."""

    def open(self, config: dict[str, Any], context: Any) -> None:
        cfg = ConnectorConfig(config, "sinkConfig")
        directory = cfg.string("outputDirectory", required=True) or ""
        default_name = (
            f"{context.get_function_name()}-{context.get_instance_id()}.txt" if context else "sink.txt"
        )
        name = cfg.string("fileName", default_name) or default_name
        self.max_size = cfg.integer("maxFileSize", 64 * 1024 * 1024, minimum=1)
        self.fsync = cfg.boolean("fsync", True)
        if os.sep in name:
            cfg._bad("fileName", name, "a file name without a directory (use outputDirectory)")
        cfg.check()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.path = os.path.join(directory, name)
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _rotate(self) -> None:
        os.close(self._fd)
        n = 1
        while os.path.exists(f"{self.path}.{n}"):
            n += 1
        os.rename(self.path, f"{self.path}.{n}")
        self._fd = self._open()

    @staticmethod
    def _joined(records: Sequence[SinkRecord]) -> bytes | None:
        """The batch's lines in one piece when every value is ``str`` with no newline of its own."""
        values = [r.value for r in records]
        if not all(type(v) is str for v in values):
            return None
        text = "\n".join(values)
        if text.count("\n") != len(values) - 1:
            return None  # a value holds a newline: escaped line by line
        return (text + "\n").encode("utf-8")

    def write(self, records: Sequence[SinkRecord]) -> None:
        try:
            chunk: list[bytes] = []
            size = os.fstat(self._fd).st_size
            joined = self._joined(records) if records else None
            if joined is not None and size + len(joined) <= self.max_size:
                records_left: Sequence[SinkRecord] = ()
                chunk.append(joined)
            else:
                records_left = records
            for record in records_left:
                line = _text(record)
                if chunk and size + len(line) > self.max_size:
                    os.write(self._fd, b"".join(chunk))
                    chunk = []
                if size and size + len(line) > self.max_size:
                    self._rotate()
                    size = 0
                chunk.append(line)
                size += len(line)
            if chunk:
                os.write(self._fd, b"".join(chunk))
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            for record in records:
                record.fail(f"writing {self.path} failed: {exc}")
            return
        for record in records:
            record.ack()

    def close(self) -> None:
        os.close(self._fd)
