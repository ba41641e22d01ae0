"""Defaults, derived values and cross-field rules of a FunctionConfig.

:func:`resolve` applies Pulsar's defaults (``inferMissingArguments``), derives the
subscription type and name, checks every rule that Pulsar's ``doCommonChecks`` and
Python checks enforce (relaxed where Magnetar does more, such as retries and
dead-lettering for Python), and returns a :class:`FunctionSpec` the runtime can use.
Every problem found is reported at once, each naming its field; nothing is started
or stored from a config that fails here.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.config.errors import ConfigError, ConfigProblem
from engine.config.function_config import FunctionConfig, ProducerConfig, Resources
from engine.config.ignored import ignored_fields, warn_ignored
from engine.config.patterns import combined_pattern
from engine.config.topics import normalize_topic
from engine.config.windows import WindowSpec, check_window

__all__ = [
    "DEFAULT_RESOURCES",
    "FUNCTION_SCHEMA_TYPES",
    "SUPPORTED_SCHEMA_TYPES",
    "FunctionSpec",
    "InputSpec",
    "resolve",
]

#: Schema types a connector's built-in codecs decode without a SerDe class.
SUPPORTED_SCHEMA_TYPES = ("BYTES", "STRING", "JSON")
#: Schema types a function resolves through ``pulsar.schema`` (any other value names a custom
#: Schema class); see :mod:`engine.function.schemas`.
FUNCTION_SCHEMA_TYPES = (
    *SUPPORTED_SCHEMA_TYPES,
    "AVRO",
    "KEY_VALUE",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FLOAT",
    "DOUBLE",
    "BOOLEAN",
)
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
#: Pulsar's per-instance resource defaults.
DEFAULT_RESOURCES = Resources(cpu=1.0, ram=1073741824, disk=10737418240)

#: The most threads ``concurrency`` may ask for.
MAX_CONCURRENCY = 1024
#: Log levels accepted by ``logLevel`` (Python's and log4j's names) -> Python's level name.
LOG_LEVELS = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARNING",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "CRITICAL",
    "CRITICAL": "CRITICAL",
}

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.=")


@dataclass(frozen=True)
class InputSpec:
    """One input of a function, with its decoding settings."""

    topic: str
    serde_class_name: str | None = None
    schema_type: str | None = None
    is_regex_pattern: bool = False
    receiver_queue_size: int | None = None
    consumer_properties: dict[str, str] = field(default_factory=dict)
    schema_properties: dict[str, str] = field(default_factory=dict)
    #: Apache's CryptoConfig for this input (``cryptoKeyReaderClassName``, …), if any.
    crypto_config: dict[str, Any] | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """A validated function with every default and derived value filled in."""

    tenant: str
    namespace: str
    name: str
    class_name: str
    py: str | None
    inputs: tuple[InputSpec, ...]
    output: str | None
    output_serde_class_name: str | None
    output_schema_type: str | None
    processing_guarantees: str
    auto_ack: bool
    subscription_type: str
    subscription_name: str
    subscription_position: str
    retain_ordering: bool
    retain_key_ordering: bool
    max_message_retries: int | None
    dead_letter_topic: str | None
    timeout_ms: int | None
    log_topic: str | None
    log_level: str
    user_config: dict[str, Any]
    secrets: dict[str, Any]
    parallelism: int
    resources: Resources
    producer: ProducerConfig
    forward_source_message_property: bool
    cleanup_subscription: bool
    skip_to_latest: bool
    custom_runtime_options: dict[str, Any]
    max_pending_async_requests: int
    concurrency: int
    window: WindowSpec | None
    config: FunctionConfig
    #: ``(field, reason)`` of every field that is set but has no effect (warned once).
    ignored: tuple[tuple[str, str], ...] = ()
    #: Schema properties of the output (``customSchemaOutputs`` of the output topic).
    output_schema_properties: dict[str, str] = field(default_factory=dict)
    #: ``customSchemaOutputs``: schema type of other topics ``context.publish`` writes.
    custom_schema_outputs: dict[str, str] = field(default_factory=dict)

    @property
    def fqfn(self) -> str:
        """``tenant/namespace/name``."""
        return f"{self.tenant}/{self.namespace}/{self.name}"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def bad(self, field_name: str, value: Any, expected: str) -> None:
        self.problems.append(ConfigProblem(field_name, value, expected))

    def missing(self, field_name: str, expected: str) -> None:
        self.problems.append(ConfigProblem(field_name, ConfigError.absent(), expected))

    def topic(self, field_name: str, value: str, tenant: str, namespace: str) -> str | None:
        try:
            return normalize_topic(value, tenant, namespace)
        except ValueError as exc:
            self.bad(field_name, value, f"not a valid topic name ({exc})")
            return None


def _check_identifier(chk: _Checker, field_name: str, value: str) -> None:
    if not value or not set(value) <= _NAME_CHARS:
        chk.bad(field_name, value, "expected letters, digits, '_', '-', '.' or '='")


def resolve(config: FunctionConfig) -> FunctionSpec:
    """Validate ``config`` and fill in defaults; raises :class:`ConfigError` listing every problem."""
    cfg = copy.deepcopy(config)
    chk = _Checker()

    # Identity: fqfn stands for the three fields; tenant/namespace default like the CLI,
    # the name comes from the class name.
    if cfg.fqfn is not None:
        parts = cfg.fqfn.split("/")
        if len(parts) != 3 or not all(parts):
            chk.bad("fqfn", cfg.fqfn, "expected tenant/namespace/name")
        else:
            for field_name, part in zip(("tenant", "namespace", "name"), parts, strict=True):
                given = getattr(cfg, field_name)
                if given is not None and given != part:
                    chk.bad("fqfn", cfg.fqfn, f"names {field_name} {part!r} but {field_name} is {given!r}")
                setattr(cfg, field_name, part)
    if cfg.tenant is None:
        cfg.tenant = "public"
    if cfg.namespace is None:
        cfg.namespace = "default"
    if cfg.name is None and cfg.class_name:
        cfg.name = cfg.class_name.rsplit(".", 1)[-1]
    for field_name in ("tenant", "namespace", "name"):
        value = getattr(cfg, field_name)
        if value is None:
            chk.missing(field_name, "required (or give className to infer it)")
        else:
            _check_identifier(chk, field_name, value)

    # Code: Python only.
    if cfg.jar or cfg.go:
        chk.bad("jar" if cfg.jar else "go", cfg.jar or cfg.go, "Magnetar runs Python functions; give py")
    if cfg.runtime is None:
        cfg.runtime = "PYTHON"
    elif cfg.runtime != "PYTHON":
        chk.bad("runtime", cfg.runtime, "only PYTHON is supported")
    if not cfg.class_name:
        chk.missing("className", "required for a Python function (module, module.Class or module.function)")

    tenant, namespace = cfg.tenant or "public", cfg.namespace or "default"

    # Inputs, from every place Pulsar accepts them.
    specs: dict[str, InputSpec] = {}

    def add_input(topic: str, where: str, **kw: Any) -> None:
        full = chk.topic(where, topic, tenant, namespace) if not kw.get("is_regex_pattern") else topic
        if full is None:
            return
        old = specs.get(full)
        merged = {**(old.__dict__ if old else {}), **{k: v for k, v in kw.items() if v is not None}}
        merged["topic"] = full
        specs[full] = InputSpec(**merged)

    for topic in cfg.inputs or []:
        add_input(topic, "inputs")
    for topic, serde in (cfg.custom_serde_inputs or {}).items():
        add_input(topic, f"customSerdeInputs[{topic}]", serde_class_name=serde or None)
    for topic, schema in (cfg.custom_schema_inputs or {}).items():
        parsed = _schema_conf(chk, f"customSchemaInputs[{topic}]", schema)
        if parsed is not None:
            add_input(
                topic,
                f"customSchemaInputs[{topic}]",
                schema_type=parsed[0],
                schema_properties=parsed[1] or None,
            )
    for topic, spec in (cfg.input_specs or {}).items():
        where = f"inputSpecs[{topic}]"
        if spec.schema_type and spec.serde_class_name:
            chk.bad(
                where,
                f"schemaType={spec.schema_type}, serdeClassName={spec.serde_class_name}",
                "give schemaType or serdeClassName, not both",
            )
        if spec.receiver_queue_size is not None and spec.receiver_queue_size < 0:
            chk.bad(f"{where}.receiverQueueSize", spec.receiver_queue_size, "expected an integer >= 0")
        add_input(
            topic,
            where,
            serde_class_name=spec.serde_class_name,
            schema_type=spec.schema_type,
            is_regex_pattern=spec.is_regex_pattern,
            receiver_queue_size=spec.receiver_queue_size,
            consumer_properties=spec.consumer_properties or None,
            schema_properties=spec.schema_properties or None,
            crypto_config=spec.crypto_config or None,
        )
        if spec.crypto_config:
            _check_crypto(chk, f"{where}.cryptoConfig", spec.crypto_config, producer=False)
    if cfg.topics_pattern:
        add_input(cfg.topics_pattern, "topicsPattern", is_regex_pattern=True)
    _check_patterns(chk, specs)
    if not specs and not any(p.field.startswith(("inputs", "custom", "inputSpecs")) for p in chk.problems):
        chk.missing(
            "inputs",
            "at least one input topic is required (inputs, topicsPattern, customSerdeInputs, "
            "customSchemaInputs or inputSpecs)",
        )
    for input_spec in specs.values():
        if input_spec.schema_type:
            _check_schema_type(chk, f"inputs[{input_spec.topic}].schemaType", input_spec.schema_type)

    # Output, log and dead-letter topics.
    output = chk.topic("output", cfg.output, tenant, namespace) if cfg.output else None
    if output is not None and output in specs:
        chk.bad("output", cfg.output, "the output topic must not also be an input")
    if cfg.output_schema_type and cfg.output_serde_class_name:
        chk.bad(
            "outputSchemaType",
            cfg.output_schema_type,
            "give outputSchemaType or outputSerdeClassName, not both",
        )
    if cfg.output_schema_type:
        _check_schema_type(chk, "outputSchemaType", cfg.output_schema_type)
    output_schema_properties: dict[str, str] = {}
    output_schema_type = cfg.output_schema_type
    custom_outputs: dict[str, str] = {}
    for topic, conf in (cfg.custom_schema_outputs or {}).items():
        where = f"customSchemaOutputs[{topic}]"
        parsed = _schema_conf(chk, where, conf)
        full = chk.topic(where, topic, tenant, namespace)
        if parsed is None or full is None:
            continue
        if full == output:
            output_schema_properties = parsed[1]
            if parsed[0] and not output_schema_type:
                _check_schema_type(chk, where, parsed[0])
                output_schema_type = parsed[0]
        elif parsed[0]:
            _check_schema_type(chk, where, parsed[0])
            custom_outputs[full] = parsed[0]
    log_level = "INFO"
    if cfg.log_level is not None:
        level = LOG_LEVELS.get(cfg.log_level.upper())
        if level is None:
            chk.bad("logLevel", cfg.log_level, "expected one of " + ", ".join(LOG_LEVELS))
        else:
            log_level = level
    log_topic = chk.topic("logTopic", cfg.log_topic, tenant, namespace) if cfg.log_topic else None
    dlq = (
        chk.topic("deadLetterTopic", cfg.dead_letter_topic, tenant, namespace)
        if cfg.dead_letter_topic
        else None
    )

    # Semantics.
    guarantee = cfg.processing_guarantees or "ATLEAST_ONCE"
    window = check_window(chk, cfg, guarantee, tenant, namespace)
    max_pending = cfg.max_pending_async_requests if cfg.max_pending_async_requests is not None else 1000
    if max_pending <= 0:
        chk.bad("maxPendingAsyncRequests", max_pending, "expected an integer greater than 0")
    concurrency = cfg.concurrency if cfg.concurrency is not None else 1
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        chk.bad("concurrency", concurrency, f"expected an integer from 1 to {MAX_CONCURRENCY}")
    if cfg.auto_ack is False and guarantee == "ATMOST_ONCE":
        chk.bad("autoAck", False, "ATMOST_ONCE requires autoAck=true")
    auto_ack = cfg.auto_ack if cfg.auto_ack is not None else True
    if cfg.retain_ordering and cfg.retain_key_ordering:
        chk.bad("retainKeyOrdering", True, "retainOrdering and retainKeyOrdering cannot both be set")
    if cfg.retain_key_ordering and guarantee == "EFFECTIVELY_ONCE":
        chk.bad("retainKeyOrdering", True, "not allowed with EFFECTIVELY_ONCE")
    retries = cfg.max_message_retries
    if cfg.dead_letter_topic and (retries is None or retries < 0):
        chk.bad("deadLetterTopic", cfg.dead_letter_topic, "needs maxMessageRetries >= 0")
    if retries is not None and retries < 0:
        retries = None
    if cfg.timeout_ms is not None:
        if cfg.timeout_ms <= 0:
            chk.bad("timeoutMs", cfg.timeout_ms, "expected an integer greater than 0")
        elif cfg.processing_guarantees not in (None, "ATLEAST_ONCE"):
            chk.bad("timeoutMs", cfg.timeout_ms, f"only allowed with ATLEAST_ONCE, not {guarantee}")
    parallelism = cfg.parallelism if cfg.parallelism is not None else 1
    if parallelism <= 0:
        chk.bad("parallelism", parallelism, "expected an integer greater than 0")

    # Resources, merged field by field over the defaults.
    given = cfg.resources or Resources()
    resources = Resources(
        cpu=given.cpu if given.cpu is not None else DEFAULT_RESOURCES.cpu,
        ram=given.ram if given.ram is not None else DEFAULT_RESOURCES.ram,
        disk=given.disk if given.disk is not None else DEFAULT_RESOURCES.disk,
    )
    for res_field in ("cpu", "ram", "disk"):
        value = getattr(resources, res_field)
        if value is None or value <= 0:
            chk.bad(f"resources.{res_field}", value, "expected a value greater than 0")

    producer = _check_producer(chk, cfg)

    runtime_options: dict[str, Any] = {}
    if cfg.custom_runtime_options:
        try:
            runtime_options = orjson.loads(cfg.custom_runtime_options)
            if not isinstance(runtime_options, dict):
                raise TypeError
        except (orjson.JSONDecodeError, TypeError):
            chk.bad("customRuntimeOptions", cfg.custom_runtime_options, "expected a JSON object")
            runtime_options = {}

    if chk.problems:
        raise ConfigError(chk.problems)

    # Derived subscription type, as Pulsar derives it.
    if cfg.retain_ordering or guarantee == "EFFECTIVELY_ONCE":
        sub_type = "FAILOVER"
    elif cfg.retain_key_ordering:
        sub_type = "KEY_SHARED"
    else:
        sub_type = "SHARED"

    assert cfg.tenant and cfg.namespace and cfg.name and cfg.class_name
    ignored = ignored_fields(cfg)
    warn_ignored(f"{cfg.tenant}/{cfg.namespace}/{cfg.name}", ignored)
    return FunctionSpec(
        tenant=cfg.tenant,
        namespace=cfg.namespace,
        name=cfg.name,
        class_name=cfg.class_name,
        py=cfg.py,
        inputs=tuple(specs.values()),
        output=output,
        output_serde_class_name=cfg.output_serde_class_name,
        output_schema_type=output_schema_type,
        processing_guarantees=guarantee,
        auto_ack=auto_ack,
        subscription_type=sub_type,
        subscription_name=cfg.sub_name or f"{cfg.tenant}/{cfg.namespace}/{cfg.name}",
        subscription_position=cfg.subscription_position or "Latest",
        retain_ordering=bool(cfg.retain_ordering),
        retain_key_ordering=bool(cfg.retain_key_ordering),
        max_message_retries=retries,
        dead_letter_topic=dlq,
        timeout_ms=cfg.timeout_ms,
        log_topic=log_topic,
        log_level=log_level,
        user_config=dict(cfg.user_config or {}),
        secrets=dict(cfg.secrets or {}),
        parallelism=parallelism,
        resources=resources,
        producer=producer,
        # True unless disabled, as pulsar-admin defaults it.
        forward_source_message_property=cfg.forward_source_message_property is not False,
        cleanup_subscription=cfg.cleanup_subscription if cfg.cleanup_subscription is not None else True,
        skip_to_latest=bool(cfg.skip_to_latest),
        custom_runtime_options=runtime_options,
        max_pending_async_requests=max_pending,
        concurrency=concurrency,
        window=window,
        config=cfg,
        ignored=tuple(ignored),
        output_schema_properties=output_schema_properties,
        custom_schema_outputs=custom_outputs,
    )


def _check_patterns(chk: _Checker, specs: dict[str, InputSpec]) -> None:
    """Patterns compile, and with any other inputs join into one pattern of one namespace.

    The instance's one subscription covers them all (:func:`engine.config.patterns.combined_pattern`),
    so every input must then be decoded alike.
    """
    patterns = [s.topic for s in specs.values() if s.is_regex_pattern]
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            chk.bad("topicsPattern", pattern, f"not a valid regular expression ({exc})")
    if not patterns:
        return
    topics = [s.topic for s in specs.values() if not s.is_regex_pattern]
    try:
        combined_pattern(topics, patterns)
    except ValueError as exc:
        chk.bad("topicsPattern", patterns, str(exc))
        return
    decodings = {(s.serde_class_name, (s.schema_type or "").upper() or None) for s in specs.values()}
    if len(decodings) > 1:
        chk.bad(
            "topicsPattern",
            patterns,
            "with a topic pattern every input must use the same serdeClassName or schemaType",
        )


def _check_producer(chk: _Checker, cfg: FunctionConfig) -> ProducerConfig:
    producer = copy.deepcopy(cfg.producer_config) if cfg.producer_config else ProducerConfig()
    if cfg.batch_builder and not producer.batch_builder:
        producer.batch_builder = cfg.batch_builder
    for name in ("max_pending_messages", "max_pending_messages_across_partitions"):
        value = getattr(producer, name)
        if value is not None and value <= 0:
            camel = "".join(p.title() if i else p for i, p in enumerate(name.split("_")))
            chk.bad(f"producerConfig.{camel}", value, "expected an integer greater than 0")
    batching = producer.batching_config
    if batching is not None:
        if batching.batching_max_publish_delay_ms < 0:
            chk.bad(
                "producerConfig.batchingConfig.batchingMaxPublishDelayMs",
                batching.batching_max_publish_delay_ms,
                "expected an integer >= 0",
            )
        for name in ("batching_max_messages", "batching_max_bytes"):
            value = getattr(batching, name)
            if value is not None and value <= 0:
                camel = "".join(p.title() if i else p for i, p in enumerate(name.split("_")))
                chk.bad(f"producerConfig.batchingConfig.{camel}", value, "expected an integer greater than 0")
    if producer.crypto_config:
        _check_crypto(chk, "producerConfig.cryptoConfig", producer.crypto_config, producer=True)
    return producer


def _schema_conf(chk: _Checker, where: str, value: str) -> tuple[str | None, dict[str, str]] | None:
    """A schema type, or a ConsumerConfig JSON's ``schemaType`` and ``schemaProperties``."""
    if not value.strip().startswith("{"):
        return value or None, {}
    try:
        conf = orjson.loads(value)
    except orjson.JSONDecodeError:
        chk.bad(where, value, "expected a schema type or a ConsumerConfig JSON")
        return None
    props = conf.get("schemaProperties") or {}
    if not isinstance(conf, dict) or not isinstance(props, dict):
        chk.bad(where, value, "expected a ConsumerConfig JSON object with a schemaProperties object")
        return None
    return conf.get("schemaType") or None, {str(k): str(v) for k, v in props.items()}


def _check_schema_type(chk: _Checker, where: str, schema_type: str) -> None:
    if schema_type.upper() in FUNCTION_SCHEMA_TYPES or _CLASS_NAME.match(schema_type):
        return
    chk.bad(
        where,
        schema_type,
        "expected one of " + ", ".join(FUNCTION_SCHEMA_TYPES) + " or a pulsar.schema.Schema class name",
    )


#: CryptoConfig's failure actions, as Apache names them.
PRODUCER_CRYPTO_FAILURE_ACTIONS = ("FAIL", "SEND")
CONSUMER_CRYPTO_FAILURE_ACTIONS = ("FAIL", "DISCARD", "CONSUME")


def _check_crypto(chk: _Checker, where: str, conf: dict[str, Any], producer: bool) -> None:
    """Apache's CryptoConfig rules: a key-reader class, and encryption keys for a producer."""
    if not isinstance(conf.get("cryptoKeyReaderClassName"), str) or not conf["cryptoKeyReaderClassName"]:
        chk.missing(f"{where}.cryptoKeyReaderClassName", "a CryptoKeyReader class name is required")
    reader_conf = conf.get("cryptoKeyReaderConfig")
    if reader_conf is not None and not isinstance(reader_conf, dict):
        chk.bad(f"{where}.cryptoKeyReaderConfig", reader_conf, "expected an object")
    keys = conf.get("encryptionKeys")
    if keys is not None and (not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys)):
        chk.bad(f"{where}.encryptionKeys", keys, "expected a list of key names")
    if producer and not keys:
        chk.missing(f"{where}.encryptionKeys", "a producer crypto config needs at least one key name")
    elif producer and isinstance(keys, list) and len(keys) > 1:
        chk.bad(f"{where}.encryptionKeys", keys, "one key name: the Python client encrypts with one key")
    for name, allowed in (
        ("producerCryptoFailureAction", PRODUCER_CRYPTO_FAILURE_ACTIONS),
        ("consumerCryptoFailureAction", CONSUMER_CRYPTO_FAILURE_ACTIONS),
    ):
        action = conf.get(name)
        if action is not None and (not isinstance(action, str) or action.upper() not in allowed):
            chk.bad(f"{where}.{name}", action, "expected one of " + ", ".join(allowed))
