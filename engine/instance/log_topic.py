"""A logging handler that also publishes a function's log records to its log topic."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["LogTopicHandler", "function_logger"]


class LogTopicHandler(logging.Handler):
    """Publish each formatted record to a topic, without waiting (no per-record callback)."""

    def __init__(self, producer: Any, fqfn: str, instance_id: int) -> None:
        super().__init__()
        self._log_producer = producer
        self._props = {"fqfn": fqfn, "instance": str(instance_id)}
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            payload = self.format(record).encode("utf-8")
            self._log_producer.send_async(
                payload, None, properties={**self._props, "loglevel": record.levelname}
            )
        except Exception:
            self.handleError(record)


def function_logger(fqfn: str, instance_id: int, producer: Any | None, level: str = "INFO") -> logging.Logger:
    """The logger handed to a function instance, publishing to ``producer`` when given.

    ``level`` is the function's ``logLevel`` (a Python level name).
    """
    logger = logging.getLogger(f"magnetar.function.{fqfn}.{instance_id}")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if isinstance(handler, LogTopicHandler):
            logger.removeHandler(handler)
    if producer is not None:
        logger.addHandler(LogTopicHandler(producer, fqfn, instance_id))
    return logger
