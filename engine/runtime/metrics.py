"""Prometheus exposition of instance statistics with Apache's metric names and labels.

Rendering reads no instance itself when it is given snapshots gathered beforehand
(:meth:`InstanceCollector.of_snapshots`): the worker gathers them concurrently, off
its event loop's critical path, and renders from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["LABELS", "InstanceCollector", "serve_metrics"]

#: Labels of every ``pulsar_function_*`` series.
LABELS = ["tenant", "namespace", "name", "instance_id", "cluster", "fqfn"]


class InstanceCollector(Collector):
    """Collects ``pulsar_function_*`` metrics from the instances ``instances()`` returns."""

    def __init__(self, instances: Callable[[], Iterable[Any]], cluster: str = "standalone") -> None:
        self._pairs: Callable[[], Iterable[tuple[Any, dict[str, Any]]]] = lambda: (
            (inst, inst.stats.snapshot()) for inst in instances()
        )
        self._cluster = cluster

    @classmethod
    def of_snapshots(
        cls, snapshots: Iterable[tuple[Any, dict[str, Any]]], cluster: str = "standalone"
    ) -> InstanceCollector:
        """A collector of ``(instance, stats snapshot)`` pairs taken beforehand."""
        collector = cls(list, cluster)
        pairs = list(snapshots)
        collector._pairs = lambda: pairs
        return collector

    def collect(self) -> Iterable[Any]:
        p = "pulsar_function_"
        counters = {
            "received_total": "received",
            "processed_successfully_total": "processed_ok",
            "system_exceptions_total": "system_exceptions",
            "user_exceptions_total": "user_exceptions",
            "received_1min_total": "received_1min",
            "processed_successfully_1min_total": "processed_ok_1min",
            "system_exceptions_1min_total": "system_exceptions_1min",
            "user_exceptions_1min_total": "user_exceptions_1min",
        }
        families: dict[str, Any] = {
            name: CounterMetricFamily(p + name.removesuffix("_total"), name, labels=LABELS)
            for name in counters
        }
        latency = SummaryMetricFamily(p + "process_latency_ms", "Process latency in ms", labels=LABELS)
        latency_1min = SummaryMetricFamily(
            p + "process_latency_ms_1min", "Process latency in ms (last minute)", labels=LABELS
        )
        last = GaugeMetricFamily(p + "last_invocation", "Last invocation, epoch ms", labels=LABELS)
        user = SummaryMetricFamily(p + "user_metric", "User metrics", labels=[*LABELS, "metric"])
        for inst, snap in self._pairs():
            spec = inst.spec
            labels = [spec.tenant, spec.namespace, spec.name, str(inst.instance_id), self._cluster, spec.fqfn]
            for name, key in counters.items():
                families[name].add_metric(labels, snap[key])
            latency.add_metric(labels, snap["latency_count"], snap["latency_sum_ms"])
            latency_1min.add_metric(
                labels, snap["processed_ok_1min"], snap["avg_latency_ms_1min"] * snap["processed_ok_1min"]
            )
            last.add_metric(labels, snap["last_invocation_ms"])
            for metric, (total, count, _lo, _hi) in snap["user_metrics"].items():
                user.add_metric([*labels, metric], count, total)
        yield from families.values()
        yield latency
        yield latency_1min
        yield last
        yield user


def serve_metrics(port: int, instances: Callable[[], Iterable[Any]], cluster: str = "standalone") -> Any:
    """Serve ``/metrics`` on 127.0.0.1:``port``; returns the server (``shutdown()`` stops it)."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(InstanceCollector(instances, cluster))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
