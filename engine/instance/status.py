"""Instance status and metrics as Apache's InstanceCommunication messages, and back.

The process runtime carries these messages over gRPC; the REST API answers with
:func:`status_dict`, and the Prometheus collector reads :func:`snapshot_from`.
"""

from __future__ import annotations

from typing import Any

from engine.proto import InstanceCommunication_pb2 as pb

__all__ = ["function_status", "metrics_data", "snapshot_from", "status_dict"]


def metrics_data(snapshot: dict[str, Any]) -> pb.MetricsData:
    """``MetricsData`` from a stats snapshot (user metrics as ``user_metric_<name>_sum/_count``)."""
    m = pb.MetricsData(
        receivedTotal=snapshot["received"],
        receivedTotal_1min=snapshot["received_1min"],
        processedSuccessfullyTotal=snapshot["processed_ok"],
        processedSuccessfullyTotal_1min=snapshot["processed_ok_1min"],
        systemExceptionsTotal=snapshot["system_exceptions"],
        systemExceptionsTotal_1min=snapshot["system_exceptions_1min"],
        userExceptionsTotal=snapshot["user_exceptions"],
        userExceptionsTotal_1min=snapshot["user_exceptions_1min"],
        avgProcessLatency=snapshot["avg_latency_ms"],
        avgProcessLatency_1min=snapshot["avg_latency_ms_1min"],
        lastInvocation=snapshot["last_invocation_ms"],
        inputLagMs=snapshot.get("input_lag_ms", 0.0),
    )
    m.inputBacklogEntries.update(snapshot.get("input_backlog_entries", {}))
    for name, (total, count, _lo, _hi) in snapshot["user_metrics"].items():
        m.userMetrics[f"user_metric_{name}_sum"] = total
        m.userMetrics[f"user_metric_{name}_count"] = count
    return m


def function_status(
    snapshot: dict[str, Any],
    *,
    instance_id: int,
    running: bool,
    failure: str = "",
    restarts: int = 0,
    worker_id: str = "",
    dead_lettered: int = 0,
    duplicates_dropped: int = 0,
    abandoned_calls: int = 0,
    stalled: str = "",
) -> pb.FunctionStatus:
    """``FunctionStatus`` from a stats snapshot and the runtime's view of the instance."""
    status = pb.FunctionStatus(
        running=running,
        failureException=failure,
        numRestarts=restarts,
        numReceived=snapshot["received"],
        numSuccessfullyProcessed=snapshot["processed_ok"],
        numUserExceptions=snapshot["user_exceptions"],
        numSystemExceptions=snapshot["system_exceptions"],
        averageLatency=snapshot["avg_latency_ms"],
        lastInvocationTime=snapshot["last_invocation_ms"],
        instanceId=str(instance_id),
        workerId=worker_id,
        numDeadLettered=dead_lettered,
        numDuplicatesDropped=duplicates_dropped,
        numAbandonedCalls=abandoned_calls,
        stalled=stalled,
    )
    for text, ms in snapshot["latest_user_exceptions"]:
        status.latestUserExceptions.add(exceptionString=text, msSinceEpoch=ms)
    for text, ms in snapshot["latest_system_exceptions"]:
        status.latestSystemExceptions.add(exceptionString=text, msSinceEpoch=ms)
    return status


def _exceptions(items: Any) -> list[dict[str, Any]]:
    return [{"exceptionString": e.exceptionString, "timestampMs": e.msSinceEpoch} for e in items]


def status_dict(status: pb.FunctionStatus) -> dict[str, Any]:
    """The REST API's per-instance status fields (Apache's names) from a ``FunctionStatus``."""
    return {
        "instanceId": int(status.instanceId or 0),
        "running": status.running,
        "error": status.failureException,
        "numRestarts": status.numRestarts,
        "numReceived": status.numReceived,
        "numSuccessfullyProcessed": status.numSuccessfullyProcessed,
        "numUserExceptions": status.numUserExceptions,
        "latestUserExceptions": _exceptions(status.latestUserExceptions),
        "numSystemExceptions": status.numSystemExceptions,
        "latestSystemExceptions": _exceptions(status.latestSystemExceptions),
        "averageLatency": status.averageLatency,
        "lastInvocationTime": status.lastInvocationTime,
        "workerId": status.workerId,
        "numDeadLettered": status.numDeadLettered,
        "numDuplicatesDropped": status.numDuplicatesDropped,
        "numAbandonedCalls": status.numAbandonedCalls,
        "stalled": status.stalled,
    }


def snapshot_from(metrics: pb.MetricsData, status: pb.FunctionStatus | None = None) -> dict[str, Any]:
    """A stats snapshot (as ``InstanceStats.snapshot`` gives) rebuilt from the two messages.

    Latency sums are rebuilt as average times count, user metrics from their ``_sum`` and
    ``_count`` entries (their min and max do not travel and read as 0).
    """
    user: dict[str, list[float]] = {}
    for key, value in metrics.userMetrics.items():
        name, _, part = key.removeprefix("user_metric_").rpartition("_")
        entry = user.setdefault(name, [0.0, 0, 0.0, 0.0])
        if part == "sum":
            entry[0] = value
        elif part == "count":
            entry[1] = int(value)
    count = metrics.processedSuccessfullyTotal
    latest_user = [(e.exceptionString, e.msSinceEpoch) for e in status.latestUserExceptions] if status else []
    latest_sys = (
        [(e.exceptionString, e.msSinceEpoch) for e in status.latestSystemExceptions] if status else []
    )
    return {
        "received": metrics.receivedTotal,
        "processed_ok": count,
        "user_exceptions": metrics.userExceptionsTotal,
        "system_exceptions": metrics.systemExceptionsTotal,
        "avg_latency_ms": metrics.avgProcessLatency,
        "latency_sum_ms": metrics.avgProcessLatency * count,
        "latency_count": count,
        "received_1min": metrics.receivedTotal_1min,
        "processed_ok_1min": metrics.processedSuccessfullyTotal_1min,
        "user_exceptions_1min": metrics.userExceptionsTotal_1min,
        "system_exceptions_1min": metrics.systemExceptionsTotal_1min,
        "avg_latency_ms_1min": metrics.avgProcessLatency_1min,
        "last_invocation_ms": metrics.lastInvocation,
        "latest_user_exceptions": latest_user,
        "latest_system_exceptions": latest_sys,
        "user_metrics": user,
        "user_metrics_1min": {},
        "input_lag_ms": metrics.inputLagMs,
        "input_backlog_entries": dict(metrics.inputBacklogEntries),
    }
