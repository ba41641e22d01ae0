"""Apache's SourceConfig / SinkConfig (camelCase mappings) to validated specs.

The keys are Apache's: ``tenant``, ``namespace``, ``name``, ``className``, ``archive``,
``parallelism``, ``processingGuarantees``, ``configs``, ``secrets``, ``logTopic``, and
for a source ``topicName``, ``schemaType``, ``serdeClassName``; for a sink ``inputs``,
``topicsPattern``, ``topicToSchemaType``/``topicToSerdeClassName``,
``sourceSubscriptionName``, ``sourceSubscriptionPosition``, ``retainOrdering``,
``autoAck``, ``timeoutMs``, ``maxMessageRetries``, ``deadLetterTopic``. A built-in
connector is named by ``sourceType`` / ``sinkType`` (``archive: builtin://<type>`` too).
"""

from __future__ import annotations

from typing import Any

from engine.config.errors import ConfigError, ConfigProblem
from engine.config.function_config import GUARANTEES, FunctionConfig
from engine.config.topics import normalize_topic
from engine.config.validation import SUPPORTED_SCHEMA_TYPES, FunctionSpec, resolve
from engine.io.spec import SourceSpec

__all__ = ["SINK_SCHEMA_TYPES", "connector_of", "sink_spec", "source_spec"]


def connector_of(config: dict[str, Any], kind: str) -> tuple[str | None, str | None, str | None]:
    """``(built-in type, archive, class name)`` named by the config."""
    type_name = config.get(f"{kind}Type")
    archive = config.get("archive")
    if isinstance(archive, str) and archive.startswith("builtin://"):
        type_name, archive = archive.removeprefix("builtin://"), None
    return type_name, archive, config.get("className")


def _default_name(config: dict[str, Any], kind: str) -> str | None:
    type_name, _archive, class_name = connector_of(config, kind)
    if config.get("name"):
        return str(config["name"])
    if type_name:
        return f"{type_name}-{kind}"
    return class_name.rsplit(".", 1)[-1] if class_name else None


def _connector_configs(config: dict[str, Any], problems: list[ConfigProblem]) -> dict[str, Any]:
    configs = config.get("configs") or {}
    if not isinstance(configs, dict):
        problems.append(ConfigProblem("configs", configs, "a mapping of the connector's keys"))
        return {}
    return dict(configs)


def source_spec(config: dict[str, Any]) -> SourceSpec:
    """The validated source of an Apache SourceConfig mapping; every problem names its key."""
    problems: list[ConfigProblem] = []
    tenant = config.get("tenant") or "public"
    namespace = config.get("namespace") or "default"
    name = _default_name(config, "source")
    if not name:
        problems.append(ConfigProblem("name", None, "required (or give --source-type or --classname)"))
    topic = config.get("topicName")
    if not topic:
        problems.append(ConfigProblem("topicName", None, "required: the topic the source publishes to"))
    guarantee = config.get("processingGuarantees") or "ATLEAST_ONCE"
    if guarantee not in ("ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE"):
        problems.append(
            ConfigProblem("processingGuarantees", guarantee, "ATLEAST_ONCE, ATMOST_ONCE or EFFECTIVELY_ONCE")
        )
    parallelism = config.get("parallelism") or 1
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
        problems.append(ConfigProblem("parallelism", parallelism, "a whole number >= 1"))
        parallelism = 1
    schema = config.get("schemaType")
    if schema is not None and schema not in SUPPORTED_SCHEMA_TYPES:
        problems.append(ConfigProblem("schemaType", schema, "one of " + ", ".join(SUPPORTED_SCHEMA_TYPES)))
    if schema and config.get("serdeClassName"):
        problems.append(
            ConfigProblem("serdeClassName", config["serdeClassName"], "not together with schemaType")
        )
    configs = _connector_configs(config, problems)
    type_name, archive, class_name = connector_of(config, "source")
    if not type_name and not class_name:
        problems.append(
            ConfigProblem("sourceType", None, "a built-in type, or --archive/--classname of your own")
        )
    if problems:
        raise ConfigError(problems)
    return SourceSpec(
        tenant=str(tenant),
        namespace=str(namespace),
        name=str(name),
        destination_topic=normalize_topic(str(topic), str(tenant), str(namespace)),
        source_type=type_name,
        class_name=class_name,
        archive=archive,
        config=configs,
        processing_guarantees=guarantee,
        parallelism=parallelism,
        schema_type=schema,
        serde_class_name=config.get("serdeClassName"),
        secrets=dict(config.get("secrets") or {}),
        log_topic=config.get("logTopic"),
    )


#: Schema types a sink's inputs may have: the built-in codecs', and AVRO by the writer's schema.
SINK_SCHEMA_TYPES = (*SUPPORTED_SCHEMA_TYPES, "AVRO")


def _sink_schema_types(config: dict[str, Any], problems: list[ConfigProblem]) -> None:
    accepted = "one of " + ", ".join(SINK_SCHEMA_TYPES)
    schema = config.get("schemaType")
    if schema is not None and schema not in SINK_SCHEMA_TYPES:
        problems.append(ConfigProblem("schemaType", schema, accepted))
    by_topic = config.get("topicToSchemaType") or {}
    if not isinstance(by_topic, dict):
        problems.append(ConfigProblem("topicToSchemaType", by_topic, "a mapping of topics to schema types"))
        return
    for topic, value in by_topic.items():
        if value not in SINK_SCHEMA_TYPES:
            problems.append(ConfigProblem(f"topicToSchemaType[{topic}]", value, accepted))


def sink_spec(config: dict[str, Any]) -> tuple[FunctionSpec, dict[str, Any]]:
    """The validated sink (a FunctionSpec with inputs) and its connector config."""
    problems: list[ConfigProblem] = []
    configs = _connector_configs(config, problems)
    type_name, _archive, class_name = connector_of(config, "sink")
    if not type_name and not class_name:
        problems.append(
            ConfigProblem("sinkType", None, "a built-in type, or --archive/--classname of your own")
        )
    guarantee = config.get("processingGuarantees")
    if guarantee is not None and guarantee not in GUARANTEES:
        problems.append(ConfigProblem("processingGuarantees", guarantee, "one of " + ", ".join(GUARANTEES)))
    _sink_schema_types(config, problems)
    if problems:
        raise ConfigError(problems)
    schema = config.get("schemaType")
    inputs = config.get("inputs")
    if isinstance(inputs, str):
        inputs = [t.strip() for t in inputs.split(",") if t.strip()]
    schema_inputs = dict(config.get("topicToSchemaType") or {})
    serde_inputs = dict(config.get("topicToSerdeClassName") or {})
    if schema or config.get("serdeClassName"):
        for topic in inputs or []:
            if schema:
                schema_inputs.setdefault(topic, schema)
            else:
                serde_inputs.setdefault(topic, config["serdeClassName"])
    fc = FunctionConfig(
        tenant=config.get("tenant"),
        namespace=config.get("namespace"),
        name=_default_name(config, "sink"),
        class_name=class_name or f"builtin.{type_name}",
        inputs=inputs,
        topics_pattern=config.get("topicsPattern"),
        custom_schema_inputs=schema_inputs or None,
        custom_serde_inputs=serde_inputs or None,
        processing_guarantees=guarantee,
        retain_ordering=config.get("retainOrdering"),
        auto_ack=config.get("autoAck"),
        timeout_ms=config.get("timeoutMs"),
        max_message_retries=config.get("maxMessageRetries"),
        dead_letter_topic=config.get("deadLetterTopic"),
        sub_name=config.get("sourceSubscriptionName"),
        subscription_position=config.get("sourceSubscriptionPosition"),
        parallelism=config.get("parallelism"),
        secrets=config.get("secrets"),
        log_topic=config.get("logTopic"),
    )
    spec = resolve(fc)
    if spec.output is not None:
        raise ConfigError.single("output", spec.output, "a sink has no output topic")
    return spec, configs
