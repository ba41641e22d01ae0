"""One running sink instance: the function instance's loop with a sink settlement.

The instance subscribes to the sink's inputs through the same
:class:`~engine.instance.inputs.InputConsumer`, and its loop hands every batch to a
settlement from :mod:`engine.io.sink_settlement` instead of a function's dispatcher.
"""

from __future__ import annotations

import time
from typing import Any

import pulsar

from engine.broker.capabilities import BrokerCapabilities
from engine.config.validation import FunctionSpec
from engine.function.errors import FunctionLoadError
from engine.function.serdes import codec_for
from engine.hotpath import HotPath
from engine.instance.instance import FunctionInstance, InstanceState
from engine.instance.options import InstanceOptions
from engine.instance.settlement.base import Settlement, SettlementParts
from engine.io.api import Sink
from engine.io.avro_inputs import AvroInputs
from engine.io.context import connector_context
from engine.io.sink_settlement import SinkAtLeastOnce, SinkEffectivelyOnce, SinkStats
from engine.io.transform import LoadedTransform, transformed_sink
from engine.state.store import StateStore

__all__ = ["SinkInstance"]


class SinkInstance(FunctionInstance):
    """Runs instance ``instance_id`` of a sink on its own thread.

    Parameters
    ----------
    spec
        The validated sink (its inputs, subscription and guarantee).
    instance_id
        Which instance this is.
    sink
        The connector object (used by this instance alone).
    config
        The ``--sink-config`` handed to ``Sink.open``.
    client, hot, state_store, secrets_provider, options, capabilities
        As for :class:`~engine.instance.instance.FunctionInstance`.
    transform
        The transform function applied to each record before the sink writes it, if any.
    """

    def __init__(
        self,
        spec: FunctionSpec,
        instance_id: int,
        sink: Sink,
        config: dict[str, Any],
        client: pulsar.Client,
        hot: HotPath,
        state_store: StateStore | None,
        secrets_provider: Any,
        options: InstanceOptions | None = None,
        capabilities: BrokerCapabilities | None = None,
        transform: LoadedTransform | None = None,
    ) -> None:
        super().__init__(
            spec,
            instance_id,
            None,  # type: ignore[arg-type]  # a sink runs no function: _build is its own
            client,
            hot,
            state_store,
            secrets_provider,
            options,
            capabilities,
        )
        self.sink = sink
        self.config = config
        self.transform = transform
        self.sink_stats = SinkStats()
        self._opened = False

    def _context(self, config: dict[str, Any]) -> Any:
        """A Context whose user config is ``config`` (the sink's, or its transform function's)."""
        spec = self.spec
        return connector_context(
            hot=self.hot,
            spec=spec,
            function_id=self.function_id,
            function_version=self.options.function_version,
            instance_id=self.instance_id,
            input_topics=[i.topic for i in spec.inputs],
            output_topic=None,
            config=config,
            secrets_provider=self._secrets_provider,
            stats=self.stats,
            producers=self.producers,
            state_store=self.state_store,
            state_buffer=self.state_buffer,
            acknowledge=self.inputs.ack_id,
        )

    def _codec(self) -> Any:
        """What decodes the inputs: AVRO by each message's writer schema, else the first input's codec."""
        spec = self.spec
        avro = [(i.schema_type or "").upper() == "AVRO" for i in spec.inputs]
        if any(avro):
            if not all(avro):
                given = ", ".join(f"{i.topic}: {i.schema_type or 'none'}" for i in spec.inputs)
                raise FunctionLoadError(
                    f"topicToSchemaType: a sink's inputs are either all AVRO or none is (got {given})"
                )
            return AvroInputs(self.client, self.capabilities)
        first = spec.inputs[0]
        return codec_for(self.hot, first.serde_class_name, first.schema_type)

    def _build(self) -> Settlement:
        spec, hot = self.spec, self.hot
        codec = self._codec()
        self.inputs.open()
        context = self._context(self.config)
        self.sink.open(self.config, context)
        self._opened = True
        writer = self.sink
        if self.transform is not None:
            transform = self.transform
            writer = transformed_sink(self.sink, transform.function, self._context(transform.config))
        parts = SettlementParts(
            spec=spec,
            options=self.options,
            capabilities=self.capabilities,
            hot=hot,
            client=self.client,
            inputs=self.inputs,
            dispatcher=None,
            producers=self.producers,
            state_buffer=self.state_buffer,
            state_store=self.state_store,
            stats=self.stats,
            callbacks=context.callbacks,
            stopping=self._stop,
        )
        settlement: Settlement
        if spec.processing_guarantees == "EFFECTIVELY_ONCE":
            settlement = SinkEffectivelyOnce(parts, writer, codec, self.sink_stats)
        else:
            settlement = SinkAtLeastOnce(parts, writer, codec, self.sink_stats)
        settlement.start()
        return settlement

    def _close(self) -> None:
        if self._opened:
            self._opened = False
            try:
                self.sink.close()
            except Exception as exc:  # a failing close must not keep the inputs open; it is reported
                self.stats.add_system_exception(f"{type(self.sink).__name__}.close failed: {exc}")
        super()._close()

    def status(self) -> dict[str, Any]:
        """Apache's SinkStatus instance fields, as a dict."""
        snap = self.stats.snapshot()
        s = self.sink_stats
        return {
            "running": self.state is InstanceState.RUNNING and self.is_alive(),
            "error": self.failure_text,
            "numRestarts": 0,
            "numReadFromPulsar": snap["received"],
            "numSystemExceptions": snap["system_exceptions"],
            "latestSystemExceptions": [
                {"exceptionString": text, "timestampMs": ts} for text, ts in snap["latest_system_exceptions"]
            ],
            "numSinkExceptions": snap["system_exceptions"],
            "latestSinkExceptions": [{"exceptionString": s.last_error, "timestampMs": s.last_error_at}]
            if s.last_error
            else [],
            "numWrittenToSink": s.written,
            "lastReceivedTime": snap["last_invocation_ms"],
            "numDeadLettered": self.dead_lettered,
            "workerId": "",
            "instanceId": self.instance_id,
            "checkedAt": int(time.time() * 1000),
        }
