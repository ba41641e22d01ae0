"""A connector instance's status in Apache's SourceStatus / SinkStatus field names, from any runtime.

A thread-runtime instance reports those fields itself (``SourceInstance.status``,
``SinkInstance.status``). A process-runtime instance answers the InstanceControl
service's ``FunctionStatus``, whose counters mean, for a connector: received — records
read from the source, or inputs read from Pulsar by a sink; successfully processed —
records persisted to the destination topic, or records the sink acked. This module
names them as Apache's connector status does. The connector's own failures are among
the system exceptions there, so they are also reported as its source or sink exceptions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["connector_status"]

_SOURCE_KEY = "numReceivedFromSource"
_SINK_KEY = "numWrittenToSink"


def connector_status(kind: str, status: dict[str, Any]) -> dict[str, Any]:
    """``status`` (one instance's) with the SourceStatus / SinkStatus fields of ``kind``."""
    if kind not in ("source", "sink"):
        raise ValueError(f"kind: {kind!r} is not 'source' or 'sink'")
    key = _SOURCE_KEY if kind == "source" else _SINK_KEY
    if key in status or "numReceived" not in status:  # already named so, or not running anywhere
        return status
    out = {k: v for k, v in status.items() if k not in ("numReceived", "numSuccessfullyProcessed")}
    received = status.get("numReceived", 0)
    done = status.get("numSuccessfullyProcessed", 0)
    exceptions = status.get("latestSystemExceptions", [])
    if kind == "source":
        out.update(
            numReceivedFromSource=received,
            numWritten=done,
            numSourceExceptions=status.get("numSystemExceptions", 0),
            latestSourceExceptions=exceptions,
        )
    else:
        out.update(
            numReadFromPulsar=received,
            numWrittenToSink=done,
            numSinkExceptions=status.get("numSystemExceptions", 0),
            latestSinkExceptions=exceptions,
        )
    out["lastReceivedTime"] = status.get("lastInvocationTime", 0)
    return out
