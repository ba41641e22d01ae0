"""The instance of a fused source member: the source's ``read()``, every stage, the sink's ``write``.

:class:`FusedSourceInstance` is a :class:`~engine.io.source_instance.SourceInstance`
whose records, instead of going to a producer, go through the stage functions in turn
and then (with a sink) to ``Sink.write`` as :class:`FusedSinkRecord` objects. The chain
has the guarantees of its first input, the source:

- a source record is acknowledged to the source (``Record.ack``) once the sink acked
  the record made from it, or at once when a stage returned ``None`` (nothing to write);
- a stage that raises, a sink ``fail()`` or a ``write`` that raises fails the source
  record (``Record.fail``): the source decides whether it is read again;
- under ATMOST_ONCE a record is acknowledged as soon as it is handed to the sink.

The sink's ``ack``/``fail`` may come from any thread: they are appended to the
instance's completion deque and applied on its thread, as a producer's are. Each
stage gets a Context of its own (its user config and secrets; state is the fused
member's). Without a sink, the last stage's results are published to the member's
destination topic as a source publishes.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pulsar

from engine.function.errors import FunctionLoadError
from engine.function.loader import add_code_paths, load_function
from engine.function.package import prepare_package
from engine.hotpath import HotPath
from engine.instance.options import InstanceOptions
from engine.io.api import Record, Sink, SinkRecord, Source
from engine.io.loader import connector_class, new_connector
from engine.io.source_instance import SourceInstance
from engine.io.spec import SourceSpec
from engine.state.store import StateStore

__all__ = ["FusedSinkRecord", "FusedSourceInstance", "Stage", "build_fused_source"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the chain: its name, function, and the user config and secrets of its Context."""

    name: str
    call: Callable[..., Any]
    pass_context: bool
    user_config: dict[str, Any]
    secrets: dict[str, Any]


class FusedSinkRecord(SinkRecord):
    """What a fused sink is handed: the last stage's result, with its source record's key and properties."""

    __slots__ = ("_record",)

    def __init__(
        self, value: Any, record: Record, index: int, settle: Callable[[int, str | None], None]
    ) -> None:
        self.value = value
        self._record = record
        self._msg = None
        self._properties = None
        self.index = index
        self._settle = settle

    @property
    def data(self) -> bytes:  # type: ignore[override]  # computed when a sink asks for it
        """The value as bytes (a ``str`` as UTF-8, anything else as JSON): no SerDe runs in a fused chain."""
        value = self.value
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        return orjson.dumps(value)

    @property
    def key(self) -> str | None:
        """The source record's key."""
        return self._record.key

    @property
    def properties(self) -> dict[str, str]:
        """The source record's properties."""
        return self._record.properties

    @property
    def event_time(self) -> int:
        """The source record's event time."""
        return self._record.event_time

    @property
    def topic(self) -> str:
        """Empty: a fused record came through no topic."""
        return ""

    @property
    def message_id(self) -> Any:
        """``None``: a fused record has no message id."""
        return None

    def __repr__(self) -> str:
        return f"FusedSinkRecord(key={self.key!r}, value={self.value!r})"


class FusedSourceInstance(SourceInstance):
    """A source instance whose records go through ``stages`` and then to ``sink`` (or the destination).

    Parameters are those of :class:`SourceInstance`, and
    stages
        The stage functions, in chain order.
    sink, sink_config
        The sink connector and its config; ``None``: publish the last stage's results.
    """

    def __init__(
        self,
        spec: SourceSpec,
        instance_id: int,
        source: Source,
        client: pulsar.Client,
        hot: HotPath,
        state_store: StateStore | None,
        secrets_provider: Any,
        options: InstanceOptions | None,
        stages: list[Stage],
        sink: Sink | None,
        sink_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, instance_id, source, client, hot, state_store, secrets_provider, options)
        self.stages = stages
        self.sink = sink
        self.sink_config = sink_config or {}
        self._calls: list[tuple[str, Callable[..., Any], Any]] = []
        self._sink_opened = False

    def _open(self) -> None:
        spec = self.spec
        self._calls = [
            (
                s.name,
                s.call,
                self._context(dataclasses.replace(spec, secrets=s.secrets), s.user_config, None)
                if s.pass_context
                else None,
            )
            for s in self.stages
        ]
        if self.sink is None:
            super()._open()
            return
        self.sink.open(self.sink_config, self._context(spec, self.sink_config, None))
        self._sink_opened = True
        self.source.open(spec.config, self._context(spec, spec.config, None))
        self._opened = True

    def _through_stages(self, records: Sequence[Record]) -> tuple[list[Any], list[Record]]:
        """The last stage's result of each record that has one, and its source record.

        A record a stage dropped (``None``) is acknowledged; one a stage raised on is failed.
        """
        values: list[Any] = []
        origins: list[Record] = []
        done = self._done
        calls = self._calls
        for record in records:
            value = record.value
            name = ""
            try:
                for name, call, context in calls:  # noqa: B007  # ``name`` is read by the except
                    value = call(value) if context is None else call(value, context)
                    if value is None:
                        break
            except Exception as exc:  # the user's stage failed this record: the source is told
                text = f"stage {name} raised {type(exc).__name__}: {exc}"
                self.stats.add_user_exception(text)
                done.append((record, text, False))
                continue
            if value is None:
                done.append((record, None, False))
                continue
            values.append(value)
            origins.append(record)
        return values, origins

    def _send(self, records: Sequence[Record]) -> None:
        if self.sink is None:
            values, origins = self._through_stages(records)
            dropped = len(records) - len(origins)
            self.read_count += dropped
            self.stats.add_received(dropped)
            super()._send([dataclasses.replace(r, value=v) for v, r in zip(values, origins, strict=True)])
            return
        count = len(records)
        self.read_count += count
        self.stats.add_received(count)
        self.last_received_ms = int(time.time() * 1000)
        values, origins = self._through_stages(records)
        if origins:
            self._write(values, origins)

    def _write(self, values: list[Any], origins: list[Record]) -> None:
        """Hand one batch to the sink; its ``ack``/``fail`` settle the source records."""
        assert self.sink is not None
        at_most_once = self.spec.processing_guarantees == "ATMOST_ONCE"
        done = self._done
        settled = [False] * len(origins)

        def settle(index: int, error: str | None) -> None:  # any thread: hand over only
            if settled[index]:
                return  # a record is settled once; a second ack or fail is ignored
            settled[index] = True
            done.append((None if at_most_once else origins[index], error, True))

        batch = [
            FusedSinkRecord(v, r, i, settle) for i, (v, r) in enumerate(zip(values, origins, strict=True))
        ]
        self._pending += len(batch)
        if at_most_once:
            done.extend((r, None, False) for r in origins)
        try:
            self.sink.write(batch)
        except Exception as exc:  # the sink failed the whole batch: every record not yet settled fails
            text = f"{type(self.sink).__name__}.write failed: {type(exc).__name__}: {exc}"
            for i in range(len(batch)):
                settle(i, text)

    def _close(self) -> None:
        super()._close()
        if self._sink_opened:
            self._sink_opened = False
            assert self.sink is not None
            try:
                self.sink.close()
            except Exception as exc:  # reported
                self._source_exception(f"{type(self.sink).__name__}.close failed: {exc}")


def _stages(chain: dict[str, Any], package_path: str | None, data_dir: str) -> list[Stage]:
    paths: list[str] = []
    if package_path:
        paths = prepare_package(package_path, os.path.join(data_dir, "packages"))
        add_code_paths(paths)
    stages = []
    for item in chain.get("stages") or []:
        loaded = load_function(str(item["className"]), paths)
        if loaded.is_async or inspect.iscoroutinefunction(loaded.call):
            raise FunctionLoadError(f"fused stage {item['name']}: an async function cannot be fused")
        stages.append(
            Stage(
                str(item["name"]),
                loaded.call,
                loaded.pass_context,
                dict(item.get("userConfig") or {}),
                dict(item.get("secrets") or {}),
            )
        )
    if not stages:
        raise FunctionLoadError("a fused source member names no stages")
    return stages


def build_fused_source(
    spec: SourceSpec,
    chain: dict[str, Any],
    package_path: str | None,
    instance_id: int,
    client: pulsar.Client,
    hot: HotPath,
    state_store: StateStore | None,
    secrets_provider: Any,
    options: InstanceOptions,
    data_dir: str,
) -> FusedSourceInstance:
    """The (not yet started) instance of a fused source member (``chain``: its stages and sink)."""
    stages = _stages(chain, package_path, data_dir)
    archive = None if spec.source_type else package_path  # a built-in source has no archive
    source_cls = connector_class("source", spec.source_type, archive, spec.class_name, data_dir)
    sink: Sink | None = None
    sink_config: dict[str, Any] = {}
    described = chain.get("sink")
    if described:
        type_name = described.get("sinkType")
        sink_cls = connector_class(
            "sink",
            type_name,
            None if type_name else package_path,
            None if type_name else described.get("className"),
            data_dir,
        )
        sink = new_connector(sink_cls)
        sink_config = dict(described.get("configs") or {})
    return FusedSourceInstance(
        dataclasses.replace(spec, archive=archive),
        instance_id,
        new_connector(source_cls),
        client,
        hot,
        state_store,
        secrets_provider,
        options,
        stages,
        sink,
        sink_config,
    )
