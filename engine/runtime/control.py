"""The InstanceControl gRPC service of one instance (Apache's method and field names).

The child process of the process runtime serves it on a loopback port; the worker's
:class:`~engine.runtime.process.ProcessInstance` is its client.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from google.protobuf import empty_pb2

from engine.instance.instance import FunctionInstance
from engine.proto import InstanceCommunication_pb2 as pb
from engine.proto import InstanceCommunication_pb2_grpc as pb_grpc

__all__ = ["InstanceControlService", "serve_control"]


class InstanceControlService(pb_grpc.InstanceControlServicer):
    """Answers status, metrics and health for ``instance``."""

    def __init__(self, instance: FunctionInstance, worker_id: str = "") -> None:
        self.instance = instance
        self.worker_id = worker_id

    def GetFunctionStatus(self, request: Any, context: Any) -> pb.FunctionStatus:
        """Status counters, failure and latest exceptions."""
        return self.instance.status_proto(self.worker_id)

    def GetMetrics(self, request: Any, context: Any) -> pb.MetricsData:
        """Metrics since start (or the last reset)."""
        return self.instance.metrics_proto()

    def GetAndResetMetrics(self, request: Any, context: Any) -> pb.MetricsData:
        """Metrics, then zero them."""
        data = self.instance.metrics_proto()
        self.instance.stats.reset()
        return data

    def ResetMetrics(self, request: Any, context: Any) -> empty_pb2.Empty:
        """Zero the metrics."""
        self.instance.stats.reset()
        return empty_pb2.Empty()

    def HealthCheck(self, request: Any, context: Any) -> pb.HealthCheckResult:
        """Healthy while the instance's loop runs without a failure."""
        return pb.HealthCheckResult(success=self.instance.is_alive() and self.instance.failure is None)


def serve_control(
    instance: FunctionInstance, worker_id: str = "", host: str = "127.0.0.1", port: int = 0
) -> tuple[Any, int]:
    """Start the service on ``host`` at ``port`` (0: a free one); returns ``(server, port)``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="control"))
    pb_grpc.add_InstanceControlServicer_to_server(InstanceControlService(instance, worker_id), server)
    port = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, port
