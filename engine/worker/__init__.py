"""A function worker process: cluster services, runtime and REST API together."""

from engine.worker.worker import NotLeader, Worker, WorkerConfig

__all__ = ["NotLeader", "Worker", "WorkerConfig"]
