"""Sources and sinks as ``FunctionDetails`` (``componentType`` SOURCE / SINK), and instances built from them.

As Apache records them: a source's connector is in ``source`` (``className``,
``configs`` as JSON, ``builtin``) and its destination in ``sink`` (``topic``,
``schemaType``, ``serDeClassName``); a sink's inputs are in ``source`` like a function's
and its connector in ``sink`` (``className``, ``configs``, ``builtin``).
:func:`build_connector_instance` is what a runtime calls for a details record whose
component is not a function.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pulsar

from engine.broker.capabilities import BrokerCapabilities
from engine.config.details import _GUARANTEE, config_from_details, to_details
from engine.config.validation import FunctionSpec, resolve
from engine.hotpath import HotPath
from engine.instance.options import InstanceOptions
from engine.io.loader import connector_class, new_connector
from engine.io.sink_instance import SinkInstance
from engine.io.source_instance import SourceInstance
from engine.io.spec import SourceSpec
from engine.io.transform import TransformSpec, load_transform
from engine.proto import Function_pb2 as pb
from engine.state.store import StateStore

__all__ = [
    "build_connector_instance",
    "is_connector",
    "sink_details",
    "sink_from_details",
    "source_details",
    "source_from_details",
    "transform_from_details",
]

_GUARANTEE_NAME = {v: k for k, v in _GUARANTEE.items()}


def is_connector(details: pb.FunctionDetails) -> bool:
    """True for a source or a sink."""
    return details.componentType in (pb.FunctionDetails.SOURCE, pb.FunctionDetails.SINK)


def source_details(spec: SourceSpec) -> pb.FunctionDetails:
    """The ``FunctionDetails`` of a source."""
    d = pb.FunctionDetails(
        tenant=spec.tenant,
        namespace=spec.namespace,
        name=spec.name,
        className=spec.class_name or "",
        logTopic=spec.log_topic or "",
        processingGuarantees=_GUARANTEE[spec.processing_guarantees],
        secretsMap=orjson.dumps(spec.secrets).decode() if spec.secrets else "",
        runtime=pb.FunctionDetails.PYTHON,
        parallelism=spec.parallelism,
        componentType=pb.FunctionDetails.SOURCE,
        builtin=spec.source_type or "",
    )
    d.source.className = spec.class_name or ""
    d.source.configs = orjson.dumps(spec.config).decode()
    d.source.builtin = spec.source_type or ""
    d.sink.topic = spec.destination_topic
    d.sink.schemaType = spec.schema_type or ""
    d.sink.serDeClassName = spec.serde_class_name or ""
    return d


def source_from_details(d: pb.FunctionDetails, package_path: str | None = None) -> SourceSpec:
    """The source recorded in ``d`` (its code at ``package_path`` when it is not a built-in)."""
    return SourceSpec(
        tenant=d.tenant,
        namespace=d.namespace,
        name=d.name,
        destination_topic=d.sink.topic,
        source_type=d.source.builtin or d.builtin or None,
        class_name=d.source.className or d.className or None,
        archive=package_path,
        config=orjson.loads(d.source.configs) if d.source.configs else {},
        processing_guarantees=_GUARANTEE_NAME[d.processingGuarantees],
        parallelism=d.parallelism or 1,
        schema_type=d.sink.schemaType or None,
        serde_class_name=d.sink.serDeClassName or None,
        secrets=orjson.loads(d.secretsMap) if d.secretsMap else {},
        log_topic=d.logTopic or None,
    )


def sink_details(
    spec: FunctionSpec,
    configs: dict[str, Any],
    sink_type: str | None,
    class_name: str | None,
    transform: TransformSpec | None = None,
) -> pb.FunctionDetails:
    """The ``FunctionDetails`` of a sink: its inputs as a function's, its connector in ``sink``."""
    d = to_details(spec)
    d.magnetarTransformFunction = transform.to_json() if transform is not None else ""
    d.componentType = pb.FunctionDetails.SINK
    d.builtin = sink_type or ""
    d.sink.className = class_name or ""
    d.sink.builtin = sink_type or ""
    d.sink.configs = orjson.dumps(configs).decode()
    return d


def sink_from_details(
    d: pb.FunctionDetails, package_path: str | None = None
) -> tuple[FunctionSpec, dict[str, Any], tuple[str | None, str | None, str | None]]:
    """The sink recorded in ``d``: its spec, its connector config, and ``(type, archive, class)``."""
    config = config_from_details(d)
    spec = resolve(config)
    configs = orjson.loads(d.sink.configs) if d.sink.configs else {}
    return spec, configs, (d.sink.builtin or d.builtin or None, package_path, d.sink.className or None)


def transform_from_details(d: pb.FunctionDetails) -> TransformSpec | None:
    """The sink's transform function recorded in ``d``, or ``None``."""
    return TransformSpec.from_json(d.magnetarTransformFunction)


def build_connector_instance(
    details: pb.FunctionDetails,
    package_path: str | None,
    instance_id: int,
    client: pulsar.Client,
    hot: HotPath,
    state_store: StateStore | None,
    secrets_provider: Any,
    options: InstanceOptions,
    data_dir: str,
    capabilities: BrokerCapabilities | None = None,
) -> SourceInstance | SinkInstance:
    """The (not yet started) instance ``instance_id`` of the source or sink in ``details``."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    if details.componentType == pb.FunctionDetails.SOURCE:
        source = source_from_details(details, package_path)
        from engine.mesh.fused_source import chain_of  # engine.mesh builds on engine.io

        chain = chain_of(details)
        if chain is not None:  # a mesh's fused chain headed by this source
            from engine.mesh.fused_instance import build_fused_source

            return build_fused_source(
                source,
                chain,
                package_path,
                instance_id,
                client,
                hot,
                state_store,
                secrets_provider,
                options,
                data_dir,
            )
        cls = connector_class("source", source.source_type, package_path, source.class_name, data_dir)
        return SourceInstance(
            source, instance_id, new_connector(cls), client, hot, state_store, secrets_provider, options
        )
    if details.componentType != pb.FunctionDetails.SINK:
        raise ValueError(f"{details.tenant}/{details.namespace}/{details.name} is not a source or a sink")
    spec, configs, (type_name, archive, class_name) = sink_from_details(details, package_path)
    cls = connector_class("sink", type_name, archive, None if type_name else class_name, data_dir)
    transform = transform_from_details(details)
    return SinkInstance(
        spec,
        instance_id,
        new_connector(cls),
        configs,
        client,
        hot,
        state_store,
        secrets_provider,
        options,
        capabilities or BrokerCapabilities.apache(),
        load_transform(transform, data_dir) if transform is not None else None,
    )
