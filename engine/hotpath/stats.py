"""Instance statistics counters (pure-Python twin of ``ext/stats.pyx``).

The dispatcher bumps these once per message; the control plane reads them through
:meth:`InstanceStats.snapshot` (status, stats, Prometheus) and rolls the one-minute
window with :meth:`InstanceStats.roll_minute`. The counters and their names follow
Apache's Python instance: received, processed successfully, user and system
exceptions (with the latest ten of each), process latency, last invocation, and
user metrics.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from engine.hotpath import protocols

__all__ = ["LATEST_EXCEPTIONS", "InstanceStats"]

#: How many recent exceptions of each kind are kept for status.
LATEST_EXCEPTIONS = 10


class InstanceStats(protocols.InstanceStats):
    """Counters for one function instance, total and for the current minute."""

    __slots__ = (
        "last_invocation_ms",
        "latency_count",
        "latency_count_1min",
        "latency_sum_ms",
        "latency_sum_ms_1min",
        "latest_system",
        "latest_user",
        "processed_ok",
        "processed_ok_1min",
        "received",
        "received_1min",
        "system_exceptions",
        "system_exceptions_1min",
        "user_exceptions",
        "user_exceptions_1min",
        "user_metrics",
        "user_metrics_1min",
    )

    def __init__(self) -> None:
        self.received = 0
        self.processed_ok = 0
        self.user_exceptions = 0
        self.system_exceptions = 0
        self.latency_sum_ms = 0.0
        self.latency_count = 0
        self.last_invocation_ms = 0
        self.latest_user: deque[tuple[str, int]] = deque(maxlen=LATEST_EXCEPTIONS)
        self.latest_system: deque[tuple[str, int]] = deque(maxlen=LATEST_EXCEPTIONS)
        self.user_metrics: dict[str, list[float]] = {}
        self.roll_minute()

    def add_received(self, count: int) -> None:
        """Count ``count`` messages taken from the inputs."""
        self.received += count
        self.received_1min += count

    def add_successes(self, count: int, latency_sum_ms: float) -> None:
        """Count ``count`` successfully processed messages whose latencies sum to ``latency_sum_ms``."""
        self.processed_ok += count
        self.processed_ok_1min += count
        self.latency_sum_ms += latency_sum_ms
        self.latency_sum_ms_1min += latency_sum_ms
        self.latency_count += count
        self.latency_count_1min += count

    def add_user_exception(self, text: str) -> None:
        """Count one exception raised by the user's function."""
        self.user_exceptions += 1
        self.user_exceptions_1min += 1
        self.latest_user.append((text, int(time.time() * 1000)))

    def add_system_exception(self, text: str) -> None:
        """Count one framework failure (decode, encode, publish, state)."""
        self.system_exceptions += 1
        self.system_exceptions_1min += 1
        self.latest_system.append((text, int(time.time() * 1000)))

    def set_last_invocation(self, epoch_ms: int) -> None:
        """Record when the function was last invoked, in epoch milliseconds."""
        self.last_invocation_ms = epoch_ms

    def record_metric(self, name: str, value: float) -> None:
        """Add one observation to the user metric ``name``."""
        value = float(value)
        for table in (self.user_metrics, self.user_metrics_1min):
            entry = table.get(name)
            if entry is None:
                table[name] = [value, 1.0, value, value]
            else:
                entry[0] += value
                entry[1] += 1.0
                if value < entry[2]:
                    entry[2] = value
                if value > entry[3]:
                    entry[3] = value

    def roll_minute(self) -> None:
        """Start a new one-minute window."""
        self.received_1min = 0
        self.processed_ok_1min = 0
        self.user_exceptions_1min = 0
        self.system_exceptions_1min = 0
        self.latency_sum_ms_1min = 0.0
        self.latency_count_1min = 0
        self.user_metrics_1min: dict[str, list[float]] = {}

    def reset(self) -> None:
        """Zero every counter (the ``ResetMetrics`` control call)."""
        self.__init__()  # type: ignore[misc]

    def snapshot(self) -> dict[str, Any]:
        """A plain dict of every counter, safe to hand to another thread."""
        avg = self.latency_sum_ms / self.latency_count if self.latency_count else 0.0
        avg_1min = self.latency_sum_ms_1min / self.latency_count_1min if self.latency_count_1min else 0.0
        return {
            "received": self.received,
            "processed_ok": self.processed_ok,
            "user_exceptions": self.user_exceptions,
            "system_exceptions": self.system_exceptions,
            "avg_latency_ms": avg,
            "latency_sum_ms": self.latency_sum_ms,
            "latency_count": self.latency_count,
            "received_1min": self.received_1min,
            "processed_ok_1min": self.processed_ok_1min,
            "user_exceptions_1min": self.user_exceptions_1min,
            "system_exceptions_1min": self.system_exceptions_1min,
            "avg_latency_ms_1min": avg_1min,
            "last_invocation_ms": self.last_invocation_ms,
            "latest_user_exceptions": list(self.latest_user),
            "latest_system_exceptions": list(self.latest_system),
            "user_metrics": {k: list(v) for k, v in self.user_metrics.items()},
            "user_metrics_1min": {k: list(v) for k, v in self.user_metrics_1min.items()},
        }
