"""Pulsar IO for Python: the connector API, the built-in connectors, and how they run.

A :class:`Source` brings outside data into a topic; a :class:`Sink` sends a topic's
messages out. Both run on the instance core: a sink is an input consumer with a sink
settlement (:mod:`engine.io.sink_settlement`), a source is a loop that reads records
from the connector and publishes them through the instance's producer pool
(:mod:`engine.io.source_instance`).
"""

from engine.io.api import Record, Sink, SinkRecord, Source, TransactionalSink
from engine.io.connectors import BUILTIN_SINKS, BUILTIN_SOURCES
from engine.io.runner import ConnectorRunner
from engine.io.sink_instance import SinkInstance
from engine.io.source_instance import SourceInstance
from engine.io.spec import SourceSpec

__all__ = [
    "BUILTIN_SINKS",
    "BUILTIN_SOURCES",
    "ConnectorRunner",
    "Record",
    "Sink",
    "SinkInstance",
    "SinkRecord",
    "Source",
    "SourceInstance",
    "SourceSpec",
    "TransactionalSink",
]
