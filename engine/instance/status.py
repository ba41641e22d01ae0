"""Instance status and metrics as Apache's InstanceCommunication messages."""

from __future__ import annotations

from typing import Any

from engine.proto import InstanceCommunication_pb2 as pb

__all__ = ["function_status", "metrics_data"]


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
    )
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
    )
    for text, ms in snapshot["latest_user_exceptions"]:
        status.latestUserExceptions.add(exceptionString=text, msSinceEpoch=ms)
    for text, ms in snapshot["latest_system_exceptions"]:
        status.latestSystemExceptions.add(exceptionString=text, msSinceEpoch=ms)
    return status
