"""Prometheus exposition of instance statistics with Apache's metric names and labels.

The families, their types and their labels are those of Apache's Python instance, so
dashboards built for it work unchanged:

* counters ``pulsar_function_{received,processed_successfully,system_exceptions,
  user_exceptions}_total`` and their one-minute twins, which Apache declares as
  ``…_total_1min`` counters and so render as ``…_total_1min_total``;
* summaries ``pulsar_function_process_latency_ms`` and ``…_process_latency_ms_1min``;
* gauge ``pulsar_function_last_invocation``;
* gauges ``pulsar_function_user_exception`` and ``pulsar_function_system_exception``
  (one series per reported exception, labelled ``error`` and ``ts``; at most five per
  instance and minute are reported, as Apache rate-limits them);
* summary ``pulsar_function_user_metric`` (label ``metric``).

Beyond Apache's set, two gauges say whether a function falls behind (see
:mod:`engine.instance.lag`): ``magnetar_function_input_lag_ms`` and
``magnetar_function_input_backlog_entries`` (label ``topic``).

Every series carries ``tenant``, ``namespace`` (``tenant/namespace``), ``name``,
``instance_id``, ``cluster`` and ``fqfn``. Counters and summaries also carry their
``_created`` samples, as prometheus_client's own metric classes emit them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["EXCEPTION_LABELS", "LABELS", "InstanceCollector", "serve_metrics"]

#: Labels of every ``pulsar_function_*`` series.
LABELS = ["tenant", "namespace", "name", "instance_id", "cluster", "fqfn"]
#: Labels of the exception gauges.
EXCEPTION_LABELS = [*LABELS, "error", "ts"]

_P = "pulsar_function_"
# family name (without the ``_total`` counters get) -> snapshot key
_COUNTERS = {
    "received": "received",
    "processed_successfully": "processed_ok",
    "system_exceptions": "system_exceptions",
    "user_exceptions": "user_exceptions",
    "received_total_1min": "received_1min",
    "processed_successfully_total_1min": "processed_ok_1min",
    "system_exceptions_total_1min": "system_exceptions_1min",
    "user_exceptions_total_1min": "user_exceptions_1min",
}
_COUNTER_DOCS = {
    "received": "Messages taken from the inputs",
    "processed_successfully": "Messages processed without an exception",
    "system_exceptions": "Framework failures (decode, encode, publish, state)",
    "user_exceptions": "Exceptions raised by the function",
}
#: Exceptions reported per instance and window, and the window (Apache: 5 per 60 s).
REPORTS_PER_WINDOW = 5
REPORT_WINDOW_MS = 60_000
#: Reported exception series kept per instance and kind (the oldest go first).
KEPT_REPORTS = 100


class _ExceptionReports:
    """The rate-limited exception series of one instance and kind (user or system)."""

    __slots__ = ("count", "reported", "total", "window_start")

    def __init__(self) -> None:
        self.window_start = 0
        self.count = 0
        self.total = 0
        self.reported: dict[tuple[str, str], None] = {}

    def update(self, latest: list[tuple[str, int]], total: int) -> None:
        """Report the exceptions counted since the last call (``latest`` holds the newest)."""
        new = max(0, total - self.total) if total >= self.total else total
        self.total = total
        for text, ts in latest[len(latest) - min(new, len(latest)) :]:
            if ts - self.window_start >= REPORT_WINDOW_MS:
                self.window_start, self.count = ts, 0
            if self.count < REPORTS_PER_WINDOW:
                self.count += 1
                self.reported[(_error_label(text), str(ts))] = None
                while len(self.reported) > KEPT_REPORTS:
                    del self.reported[next(iter(self.reported))]


def _error_label(text: str) -> str:
    """The exception's message, as Apache's ``str(exception)``, from our error text.

    The text ends with the ``Type: message`` line of a traceback (or is that line).
    """
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else text
    match = _TYPE_PREFIX.match(last)
    return match.group(1) if match else last


_TYPE_PREFIX = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)?: (.*)$")


class _Tracked:
    __slots__ = ("created", "system", "user")

    def __init__(self) -> None:
        self.created = time.time()
        self.user = _ExceptionReports()
        self.system = _ExceptionReports()


def _summary(name: str, doc: str, labels: list[str]) -> SummaryMetricFamily:
    return SummaryMetricFamily(_P + name, doc, labels=labels)


class InstanceCollector(Collector):
    """Collects ``pulsar_function_*`` metrics from the instances ``instances()`` returns.

    Keep one collector for the life of the process: it remembers which exceptions it
    reported (so the exception gauges stay, as Apache's do) and when each instance
    was first seen (the ``_created`` samples).
    """

    def __init__(self, instances: Callable[[], Iterable[Any]], cluster: str = "standalone") -> None:
        self._pairs: Callable[[], Iterable[tuple[Any, dict[str, Any]]]] = lambda: (
            (inst, inst.snapshot()) for inst in instances()
        )
        self._cluster = cluster
        self._tracked: dict[tuple[str, int, int], _Tracked] = {}
        self._lock = threading.Lock()

    @classmethod
    def of_snapshots(
        cls, snapshots: Iterable[tuple[Any, dict[str, Any]]], cluster: str = "standalone"
    ) -> InstanceCollector:
        """A collector of ``(instance, stats snapshot)`` pairs taken beforehand."""
        collector = cls(list, cluster)
        collector.use_snapshots(snapshots)
        return collector

    def use_snapshots(self, snapshots: Iterable[tuple[Any, dict[str, Any]]]) -> None:
        """Render from these ``(instance, stats snapshot)`` pairs, gathered beforehand off the loop."""
        pairs = list(snapshots)
        self._pairs = lambda: pairs

    def _track(self, inst: Any) -> _Tracked:
        key = (inst.spec.fqfn, int(inst.instance_id), id(inst))
        tracked = self._tracked.get(key)
        if tracked is None:
            tracked = self._tracked[key] = _Tracked()
        return tracked

    def collect(self) -> Iterable[Any]:
        counters = {
            name: CounterMetricFamily(
                _P + name, _COUNTER_DOCS[name.removesuffix("_total_1min")], labels=LABELS
            )
            for name in _COUNTERS
        }
        latency = _summary("process_latency_ms", "Process latency in ms", LABELS)
        latency_1min = _summary("process_latency_ms_1min", "Process latency in ms (last minute)", LABELS)
        last = GaugeMetricFamily(_P + "last_invocation", "Last invocation, epoch ms", labels=LABELS)
        user_exc = GaugeMetricFamily(
            _P + "user_exception", "Exception from user code", labels=EXCEPTION_LABELS
        )
        sys_exc = GaugeMetricFamily(
            _P + "system_exception", "Exception from system code", labels=EXCEPTION_LABELS
        )
        user = _summary("user_metric", "User metrics", [*LABELS, "metric"])
        input_lag = GaugeMetricFamily(
            "magnetar_function_input_lag_ms",
            "Time since the newest input the instance took was published, ms"
            " (0 once its inputs were found empty)",
            labels=LABELS,
        )
        input_backlog = GaugeMetricFamily(
            "magnetar_function_input_backlog_entries",
            "Entries published on an input topic after the newest one the instance took",
            labels=[*LABELS, "topic"],
        )
        with self._lock:
            live: set[tuple[str, int, int]] = set()
            for inst, snap in self._pairs():
                spec = inst.spec
                tracked = self._track(inst)
                live.add((spec.fqfn, int(inst.instance_id), id(inst)))
                labels = [
                    spec.tenant,
                    f"{spec.tenant}/{spec.namespace}",
                    spec.name,
                    str(inst.instance_id),
                    self._cluster,
                    spec.fqfn,
                ]
                named = dict(zip(LABELS, labels, strict=True))
                for name, key in _COUNTERS.items():
                    counters[name].add_metric(labels, snap[key], created=tracked.created)
                latency.add_metric(labels, snap["latency_count"], snap["latency_sum_ms"])
                latency.add_sample(_P + "process_latency_ms_created", named, tracked.created)
                latency_1min.add_metric(
                    labels,
                    snap["processed_ok_1min"],
                    snap["avg_latency_ms_1min"] * snap["processed_ok_1min"],
                )
                latency_1min.add_sample(_P + "process_latency_ms_1min_created", named, tracked.created)
                last.add_metric(labels, snap["last_invocation_ms"])
                tracked.user.update(snap["latest_user_exceptions"], snap["user_exceptions"])
                tracked.system.update(snap["latest_system_exceptions"], snap["system_exceptions"])
                for family, reports in ((user_exc, tracked.user), (sys_exc, tracked.system)):
                    for error, ts in reports.reported:
                        family.add_metric([*labels, error, ts], 1.0)
                input_lag.add_metric(labels, snap.get("input_lag_ms", 0.0))
                for topic, entries in snap.get("input_backlog_entries", {}).items():
                    input_backlog.add_metric([*labels, topic], entries)
                for metric, (total, count, _lo, _hi) in snap["user_metrics"].items():
                    user.add_metric([*labels, metric], count, total)
                    user.add_sample(_P + "user_metric_created", {**named, "metric": metric}, tracked.created)
            for gone in set(self._tracked) - live:
                del self._tracked[gone]
        yield from counters.values()
        yield latency
        yield latency_1min
        yield last
        yield user_exc
        yield sys_exc
        yield user
        yield input_lag
        yield input_backlog


def serve_metrics(
    port: int, instances: Callable[[], Iterable[Any]], cluster: str = "standalone", host: str = "127.0.0.1"
) -> Any:
    """Serve ``/metrics`` on ``host``:``port``; returns the server (``shutdown()`` stops it)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(InstanceCollector(instances, cluster))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
