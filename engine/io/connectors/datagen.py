"""``data-generator``: a source of synthetic records, at a rate, up to a count, in a shape.

Config keys: ``rate`` (records per second, 0: as fast as the broker takes them),
``count`` (records in all, 0: forever), ``shape`` (``json``: ``{"id", "name", "value",
"ts"}``; ``string``; ``bytes``), ``sizeBytes`` (payload size of ``string``/``bytes``),
``keyed`` (each record keyed ``key-<id % 16>``), ``sleepBetweenMessages`` (ms, Apache's
key; sets the rate).
"""

from __future__ import annotations

import random
import time
from typing import Any

from engine.io.api import Record, Source
from engine.io.config import ConnectorConfig

__all__ = ["DataGeneratorSource"]

_BATCH = 1000


class DataGeneratorSource(Source):
    """Generates records; ``read`` returns the ones due by the rate."""

    def open(self, config: dict[str, Any], context: Any) -> None:
        cfg = ConnectorConfig(config, "sourceConfig")
        self.rate = cfg.number("rate", 0.0)
        sleep_ms = cfg.integer("sleepBetweenMessages", 0)
        if sleep_ms:
            self.rate = 1000.0 / sleep_ms
        self.count = cfg.integer("count", 0)
        self.shape = cfg.choice("shape", "JSON", ("JSON", "STRING", "BYTES"))
        self.size = cfg.integer("sizeBytes", 64, minimum=1)
        self.keyed = cfg.boolean("keyed", False)
        cfg.check()
        self._pad = "x" * self.size
        self.made = 0
        self.started = time.monotonic()
        self._random = random.Random(context.get_instance_id() if context is not None else 0)

    def _value(self, n: int) -> Any:
        if self.shape == "JSON":
            return {
                "id": n,
                "name": f"user-{n}",
                "value": self._random.random(),
                "ts": int(time.time() * 1000),
            }
        head = f"{n}:"
        text = head + self._pad[len(head) :] if len(head) < self.size else head
        return text if self.shape == "STRING" else text.encode()

    def read(self) -> list[Record] | None:
        due = _BATCH
        if self.rate > 0:
            due = int((time.monotonic() - self.started) * self.rate) - self.made
            if due <= 0:
                time.sleep(min(0.1, (1 - due) / self.rate))
                return None
            due = min(due, _BATCH)
        if self.count:
            due = min(due, self.count - self.made)
            if due <= 0:
                time.sleep(0.1)  # all generated: stay idle, a stop is noticed
                return None
        first = self.made
        self.made += due
        return [
            Record(self._value(n), key=f"key-{n % 16}" if self.keyed else None)
            for n in range(first, first + due)
        ]
