from collections import deque
from typing import Any

from engine.hotpath import protocols

LATEST_EXCEPTIONS: int

class InstanceStats(protocols.InstanceStats):
    received: int
    processed_ok: int
    user_exceptions: int
    system_exceptions: int
    latency_sum_ms: float
    latency_count: int
    received_1min: int
    processed_ok_1min: int
    user_exceptions_1min: int
    system_exceptions_1min: int
    latency_sum_ms_1min: float
    latency_count_1min: int
    last_invocation_ms: int
    latest_user: deque[tuple[str, int]]
    latest_system: deque[tuple[str, int]]
    user_metrics: dict[str, list[float]]
    user_metrics_1min: dict[str, list[float]]
    def __init__(self) -> None: ...
    def add_received(self, count: int) -> None: ...
    def add_successes(self, count: int, latency_sum_ms: float) -> None: ...
    def add_user_exception(self, text: str) -> None: ...
    def add_system_exception(self, text: str) -> None: ...
    def set_last_invocation(self, epoch_ms: int) -> None: ...
    def record_metric(self, name: str, value: float) -> None: ...
    def roll_minute(self) -> None: ...
    def reset(self) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...
