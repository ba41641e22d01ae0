"""Windowing settings: Apache's WindowConfig rules and defaults, for Python functions.

Rules (as Apache's ``WindowConfigUtils``): exactly one of ``windowLengthCount`` and
``windowLengthDurationMs``, positive; sliding values positive and, when missing, the
length (a tumbling window); with a ``timestampExtractorClassName`` (event time),
``maxLagMs`` >= 0 (default 0) and ``watermarkEmitIntervalMs`` > 0 (default 1000);
``lateDataTopic`` only with an extractor. Magnetar adds: ``windowConfig.processingGuarantees``
is ATLEAST_ONCE or ATMOST_ONCE (Apache's), and an EFFECTIVELY_ONCE function may have a
tumbling window only (a sliding window's inputs are in several windows, so no single
commit can account for them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["WindowSpec", "check_window"]


class _Checks(Protocol):
    def bad(self, field_name: str, value: Any, expected: str) -> None: ...

    def topic(self, field_name: str, value: str, tenant: str, namespace: str) -> str | None: ...


@dataclass(frozen=True)
class WindowSpec:
    """A validated window: how long it is, how often it fires, and by which clock."""

    length_count: int | None
    length_ms: int | None
    slide_count: int | None
    slide_ms: int | None
    late_data_topic: str | None
    max_lag_ms: int
    watermark_interval_ms: int
    timestamp_extractor: str | None
    guarantee: str

    @property
    def tumbling(self) -> bool:
        """True when windows do not overlap (each input is in exactly one window)."""
        if self.length_count is not None:
            return self.slide_count == self.length_count
        return self.slide_ms == self.length_ms


def _positive(chk: _Checks, name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        chk.bad(f"windowConfig.{name}", value, "expected an integer greater than 0")


def check_window(chk: _Checks, cfg: Any, guarantee: str, tenant: str, namespace: str) -> WindowSpec | None:
    """The :class:`WindowSpec` of ``cfg.window_config`` (``None`` without one); problems go to ``chk``."""
    wc = cfg.window_config
    if wc is None:
        return None
    if (wc.window_length_count is None) == (wc.window_length_duration_ms is None):
        chk.bad(
            "windowConfig.windowLengthCount",
            wc.window_length_count,
            "give exactly one of windowLengthCount and windowLengthDurationMs",
        )
    _positive(chk, "windowLengthCount", wc.window_length_count)
    _positive(chk, "windowLengthDurationMs", wc.window_length_duration_ms)
    _positive(chk, "slidingIntervalCount", wc.sliding_interval_count)
    _positive(chk, "slidingIntervalDurationMs", wc.sliding_interval_duration_ms)
    if wc.sliding_interval_count is not None and wc.sliding_interval_duration_ms is not None:
        chk.bad(
            "windowConfig.slidingIntervalCount",
            wc.sliding_interval_count,
            "give slidingIntervalCount or slidingIntervalDurationMs, not both",
        )
    slide_count, slide_ms = wc.sliding_interval_count, wc.sliding_interval_duration_ms
    if slide_count is None and slide_ms is None:  # tumbling: slide by the length
        slide_count, slide_ms = wc.window_length_count, wc.window_length_duration_ms
    extractor = wc.timestamp_extractor_class_name
    max_lag = wc.max_lag_ms if wc.max_lag_ms is not None else 0
    interval = wc.watermark_emit_interval_ms if wc.watermark_emit_interval_ms is not None else 1000
    if extractor:
        if max_lag < 0:
            chk.bad("windowConfig.maxLagMs", max_lag, "expected an integer >= 0")
        if interval <= 0:
            chk.bad("windowConfig.watermarkEmitIntervalMs", interval, "expected an integer greater than 0")
    late = None
    if wc.late_data_topic:
        if not extractor:
            chk.bad("windowConfig.lateDataTopic", wc.late_data_topic, "needs timestampExtractorClassName")
        late = chk.topic("windowConfig.lateDataTopic", wc.late_data_topic, tenant, namespace)
    window_guarantee = wc.processing_guarantees or "ATLEAST_ONCE"
    if window_guarantee not in ("ATLEAST_ONCE", "ATMOST_ONCE"):
        chk.bad("windowConfig.processingGuarantees", window_guarantee, "expected ATLEAST_ONCE or ATMOST_ONCE")
    if guarantee == "EFFECTIVELY_ONCE":
        window_guarantee = guarantee
    spec = WindowSpec(
        length_count=wc.window_length_count,
        length_ms=wc.window_length_duration_ms,
        slide_count=slide_count,
        slide_ms=slide_ms,
        late_data_topic=late,
        max_lag_ms=max_lag,
        watermark_interval_ms=interval,
        timestamp_extractor=extractor or None,
        guarantee=window_guarantee,
    )
    if guarantee == "EFFECTIVELY_ONCE" and not spec.tumbling:
        chk.bad("windowConfig.slidingIntervalCount", slide_count, "EFFECTIVELY_ONCE needs a tumbling window")
    if guarantee == "MANUAL":
        chk.bad("processingGuarantees", guarantee, "windows acknowledge their inputs; MANUAL is not allowed")
    return spec
