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

    def write(self, records: Sequence[SinkRecord]) -> None:
        try:
            chunk: list[bytes] = []
            size = os.fstat(self._fd).st_size
            for record in records:
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
