"""Updates of sources and sinks: the stored config merged with the fields an update gives.

As Apache's ``SourceConfigUtils.validateUpdate`` / ``SinkConfigUtils.validateUpdate``
merge them: a field the update leaves out keeps its stored value; ``configs``, when
given, replaces the connector config as a whole; a sink's ``inputs`` are added to the
ones it has. Some fields cannot change, because the progress a connector has made is
tied to them: the processing guarantee, a source's destination topic, a sink's
subscription name, ``retainOrdering`` and ``autoAck``, and no input may be dropped.
A change of any of them is a :class:`~engine.config.errors.ConfigError` naming the field.

The progress itself is not in the config: the file source's offsets are in the state
store under the source's name, an EFFECTIVELY_ONCE sink's input positions are committed
in its own system, a sink's subscription is kept; so an updated connector resumes where
the old one stopped.
"""

from __future__ import annotations

from typing import Any

import orjson

from engine.config.details import config_from_details
from engine.config.errors import ConfigError, ConfigProblem
from engine.config.topics import normalize_topic
from engine.io.details import source_from_details
from engine.io.transform import TransformSpec
from engine.proto import Function_pb2 as pb

__all__ = ["merged_sink_config", "merged_source_config", "stored_sink_config", "stored_source_config"]

#: FunctionConfig key (as a sink is stored) → SinkConfig key.
_SINK_KEYS = {
    "inputs": "inputs",
    "topicsPattern": "topicsPattern",
    "customSchemaInputs": "topicToSchemaType",
    "customSerdeInputs": "topicToSerdeClassName",
    "processingGuarantees": "processingGuarantees",
    "retainOrdering": "retainOrdering",
    "autoAck": "autoAck",
    "timeoutMs": "timeoutMs",
    "maxMessageRetries": "maxMessageRetries",
    "deadLetterTopic": "deadLetterTopic",
    "subName": "sourceSubscriptionName",
    "subscriptionPosition": "sourceSubscriptionPosition",
    "parallelism": "parallelism",
    "secrets": "secrets",
    "logTopic": "logTopic",
    "cleanupSubscription": "cleanupSubscription",
}


def stored_source_config(md: pb.FunctionMetaData) -> dict[str, Any]:
    """The SourceConfig mapping of a stored source (unset fields left out)."""
    s = source_from_details(md.functionDetails)
    config = {
        "tenant": s.tenant,
        "namespace": s.namespace,
        "name": s.name,
        "className": s.class_name,
        "sourceType": s.source_type,
        "topicName": s.destination_topic,
        "configs": s.config,
        "processingGuarantees": s.processing_guarantees,
        "parallelism": s.parallelism,
        "schemaType": s.schema_type,
        "serdeClassName": s.serde_class_name,
        "secrets": s.secrets or None,
        "logTopic": s.log_topic,
    }
    return {k: v for k, v in config.items() if v is not None}


def stored_sink_config(md: pb.FunctionMetaData) -> dict[str, Any]:
    """The SinkConfig mapping of a stored sink (unset fields left out)."""
    d = md.functionDetails
    stored = config_from_details(d).to_dict()
    config: dict[str, Any] = {
        sink_key: stored[fc_key] for fc_key, sink_key in _SINK_KEYS.items() if fc_key in stored
    }
    config.update(tenant=d.tenant, namespace=d.namespace, name=d.name)
    type_name = d.sink.builtin or d.builtin or None
    if type_name:
        config["sinkType"] = type_name
    elif d.sink.className:
        config["className"] = d.sink.className
    config["configs"] = orjson.loads(d.sink.configs) if d.sink.configs else {}
    transform = TransformSpec.from_json(d.magnetarTransformFunction)
    if transform is not None:
        config.update(transform.to_config())
    return config


def _given(update: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in update.items() if v is not None}


def _unchanged(old: dict[str, Any], update: dict[str, Any], keys: tuple[str, ...]) -> list[ConfigProblem]:
    problems = []
    for key in keys:
        if key in update and update[key] != old.get(key):
            problems.append(
                ConfigProblem(
                    key, update[key], f"{old.get(key)!r} as it is: {key} cannot be changed by an update"
                )
            )
    return problems


def _connector(old: dict[str, Any], update: dict[str, Any], kind: str) -> dict[str, Any]:
    """The merged mapping's connector: the update's, if it names one, else the stored one."""
    type_key = f"{kind}Type"
    if any(k in update for k in (type_key, "className", "archive")):
        old = {k: v for k, v in old.items() if k not in (type_key, "className", "archive")}
    return {**old, **update}


def merged_source_config(md: pb.FunctionMetaData, update: dict[str, Any]) -> dict[str, Any]:
    """The SourceConfig of ``md`` with ``update`` applied; raises ConfigError on a forbidden change."""
    old = stored_source_config(md)
    update = _given(update)
    if "topicName" in update:
        update["topicName"] = normalize_topic(str(update["topicName"]), old["tenant"], old["namespace"])
    problems = _unchanged(old, update, ("processingGuarantees", "topicName"))
    if problems:
        raise ConfigError(problems)
    return _connector(old, update, "source")


def merged_sink_config(md: pb.FunctionMetaData, update: dict[str, Any]) -> dict[str, Any]:
    """The SinkConfig of ``md`` with ``update`` applied; raises ConfigError on a forbidden change."""
    old = stored_sink_config(md)
    update = _given(update)
    problems = _unchanged(
        old, update, ("processingGuarantees", "sourceSubscriptionName", "retainOrdering", "autoAck")
    )
    if problems:
        raise ConfigError(problems)
    inputs = update.get("inputs")
    if isinstance(inputs, str):
        inputs = [t.strip() for t in inputs.split(",") if t.strip()]
    if inputs is not None:
        # An input is never dropped (its subscription holds the sink's progress); new ones are added.
        named = [normalize_topic(str(t), old["tenant"], old["namespace"]) for t in inputs]
        update["inputs"] = list(dict.fromkeys([*(old.get("inputs") or []), *named]))
    return _connector(old, update, "sink")
