"""The built-in connectors, by the names ``--source-type`` / ``--sink-type`` take."""

from engine.io.connectors.datagen import DataGeneratorSource
from engine.io.connectors.file_sink import FileSink
from engine.io.connectors.file_source import FileSource
from engine.io.connectors.http_sink import HttpSink
from engine.io.connectors.http_source import HttpSource
from engine.io.connectors.jdbc import JdbcSink, PostgresSink, SqliteSink

__all__ = [
    "BUILTIN_SINKS",
    "BUILTIN_SOURCES",
    "DataGeneratorSource",
    "FileSink",
    "FileSource",
    "HttpSink",
    "HttpSource",
    "JdbcSink",
    "PostgresSink",
    "SqliteSink",
]

#: ``--source-type`` name -> (class, description).
BUILTIN_SOURCES: dict[str, tuple[type, str]] = {
    "data-generator": (DataGeneratorSource, "Synthetic records at a rate, up to a count"),
    "file": (FileSource, "Each line of the files of a directory, once"),
    "http": (HttpSource, "An HTTP endpoint: POSTed messages, answered once persisted"),
}

#: ``--sink-type`` name -> (class, description).
BUILTIN_SINKS: dict[str, tuple[type, str]] = {
    "file": (FileSink, "Lines appended to a file, rotated by size"),
    "http": (HttpSink, "Batches POSTed as JSON to a URL, retried with backoff"),
    "jdbc-sqlite": (SqliteSink, "Rows inserted or upserted into an SQLite table"),
    "jdbc-postgres": (PostgresSink, "Rows inserted or upserted into a PostgreSQL table"),
}
