"""Pulsar's FunctionConfig: the camelCase fields of YAML/JSON configs, typed.

:func:`parse_function_config` turns a mapping (a YAML or JSON document, or a REST
``functionConfig`` part) into a :class:`FunctionConfig`, rejecting unknown keys and
ill-typed values with errors that name the field. Defaults, derived values and the
cross-field rules live in :mod:`engine.config.validation`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import Any

from engine.config.errors import ConfigError, ConfigProblem

__all__ = [
    "GUARANTEES",
    "RUNTIMES",
    "SUBSCRIPTION_POSITIONS",
    "BatchingConfig",
    "ConsumerConfig",
    "FunctionConfig",
    "ProducerConfig",
    "Resources",
    "WindowConfig",
    "parse_function_config",
]

GUARANTEES = ("ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE", "MANUAL")
SUBSCRIPTION_POSITIONS = ("Latest", "Earliest")
RUNTIMES = ("JAVA", "PYTHON", "GO")
BATCH_BUILDERS = ("DEFAULT", "KEY_BASED")
COMPRESSION_TYPES = ("NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _meta(
    kind: str, choices: tuple[str, ...] = (), camel: str | None = None, aliases: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {"kind": kind, "choices": choices, "camel": camel, "aliases": aliases}


@dataclass
class ConsumerConfig:
    """Per-input settings (Pulsar's ConsumerConfig / ``inputSpecs`` values)."""

    schema_type: str | None = field(default=None, metadata=_meta("str"))
    serde_class_name: str | None = field(default=None, metadata=_meta("str"))
    # Pulsar's own JSON names this boolean ``regexPattern`` (its getter is ``isRegexPattern``).
    is_regex_pattern: bool = field(default=False, metadata=_meta("bool", aliases=("regexPattern",)))
    schema_properties: dict[str, str] = field(default_factory=dict, metadata=_meta("strmap"))
    consumer_properties: dict[str, str] = field(default_factory=dict, metadata=_meta("strmap"))
    receiver_queue_size: int | None = field(default=None, metadata=_meta("int"))
    crypto_config: dict[str, Any] | None = field(default=None, metadata=_meta("map"))
    pool_messages: bool = field(default=False, metadata=_meta("bool"))
    message_payload_processor_config: dict[str, Any] | None = field(default=None, metadata=_meta("map"))


@dataclass
class BatchingConfig:
    """Producer batching (PIP-401 ``batchingConfig``)."""

    enabled: bool = field(default=True, metadata=_meta("bool"))
    batching_max_publish_delay_ms: int = field(default=10, metadata=_meta("int"))
    round_robin_router_batching_partition_switch_frequency: int | None = field(
        default=None, metadata=_meta("int")
    )
    batching_max_messages: int | None = field(default=None, metadata=_meta("int"))
    batching_max_bytes: int | None = field(default=None, metadata=_meta("int"))
    batch_builder: str | None = field(default=None, metadata=_meta("enum", BATCH_BUILDERS))


@dataclass
class ProducerConfig:
    """Output producer settings (Pulsar's ProducerConfig)."""

    max_pending_messages: int | None = field(default=None, metadata=_meta("int"))
    max_pending_messages_across_partitions: int | None = field(default=None, metadata=_meta("int"))
    use_thread_local_producers: bool = field(default=False, metadata=_meta("bool"))
    crypto_config: dict[str, Any] | None = field(default=None, metadata=_meta("map"))
    batch_builder: str | None = field(default=None, metadata=_meta("enum", BATCH_BUILDERS))
    compression_type: str | None = field(default=None, metadata=_meta("enum", COMPRESSION_TYPES))
    batching_config: BatchingConfig | None = field(default=None, metadata=_meta("BatchingConfig"))


@dataclass
class Resources:
    """Requested resources of one instance."""

    cpu: float | None = field(default=None, metadata=_meta("float"))
    ram: int | None = field(default=None, metadata=_meta("int"))
    disk: int | None = field(default=None, metadata=_meta("int"))


@dataclass
class WindowConfig:
    """Windowing settings, as Apache's WindowConfig (validated in :mod:`engine.config.windows`)."""

    window_length_count: int | None = field(default=None, metadata=_meta("int"))
    window_length_duration_ms: int | None = field(default=None, metadata=_meta("int"))
    sliding_interval_count: int | None = field(default=None, metadata=_meta("int"))
    sliding_interval_duration_ms: int | None = field(default=None, metadata=_meta("int"))
    late_data_topic: str | None = field(default=None, metadata=_meta("str"))
    max_lag_ms: int | None = field(default=None, metadata=_meta("int"))
    watermark_emit_interval_ms: int | None = field(default=None, metadata=_meta("int"))
    timestamp_extractor_class_name: str | None = field(default=None, metadata=_meta("str"))
    actual_window_function_class_name: str | None = field(default=None, metadata=_meta("str"))
    processing_guarantees: str | None = field(default=None, metadata=_meta("enum", GUARANTEES))


@dataclass
class FunctionConfig:
    """A function's configuration, field for field as Pulsar's FunctionConfig.

    ``None`` means "not given": :func:`engine.config.validation.resolve` fills the
    defaults and derived values.
    """

    tenant: str | None = field(default=None, metadata=_meta("str"))
    namespace: str | None = field(default=None, metadata=_meta("str"))
    name: str | None = field(default=None, metadata=_meta("str"))
    class_name: str | None = field(default=None, metadata=_meta("str"))
    fqfn: str | None = field(default=None, metadata=_meta("str"))
    function_type: str | None = field(default=None, metadata=_meta("str"))
    py: str | None = field(default=None, metadata=_meta("str"))
    jar: str | None = field(default=None, metadata=_meta("str"))
    go: str | None = field(default=None, metadata=_meta("str"))
    runtime: str | None = field(default=None, metadata=_meta("enum", RUNTIMES))
    inputs: list[str] | None = field(default=None, metadata=_meta("strlist"))
    topics_pattern: str | None = field(default=None, metadata=_meta("str"))
    custom_serde_inputs: dict[str, str] | None = field(default=None, metadata=_meta("strmap"))
    custom_schema_inputs: dict[str, str] | None = field(default=None, metadata=_meta("strmap"))
    input_specs: dict[str, ConsumerConfig] | None = field(default=None, metadata=_meta("specmap"))
    input_type_class_name: str | None = field(default=None, metadata=_meta("str"))
    output: str | None = field(default=None, metadata=_meta("str"))
    output_schema_type: str | None = field(default=None, metadata=_meta("str"))
    output_serde_class_name: str | None = field(default=None, metadata=_meta("str"))
    output_type_class_name: str | None = field(default=None, metadata=_meta("str"))
    custom_schema_outputs: dict[str, str] | None = field(default=None, metadata=_meta("strmap"))
    producer_config: ProducerConfig | None = field(default=None, metadata=_meta("ProducerConfig"))
    batch_builder: str | None = field(default=None, metadata=_meta("enum", BATCH_BUILDERS))
    forward_source_message_property: bool | None = field(default=None, metadata=_meta("bool"))
    processing_guarantees: str | None = field(default=None, metadata=_meta("enum", GUARANTEES))
    auto_ack: bool | None = field(default=None, metadata=_meta("bool"))
    retain_ordering: bool | None = field(default=None, metadata=_meta("bool"))
    retain_key_ordering: bool | None = field(default=None, metadata=_meta("bool"))
    max_message_retries: int | None = field(default=None, metadata=_meta("int"))
    dead_letter_topic: str | None = field(default=None, metadata=_meta("str"))
    timeout_ms: int | None = field(default=None, metadata=_meta("int"))
    sub_name: str | None = field(default=None, metadata=_meta("str"))
    subscription_position: str | None = field(default=None, metadata=_meta("enum", SUBSCRIPTION_POSITIONS))
    cleanup_subscription: bool | None = field(default=None, metadata=_meta("bool"))
    skip_to_latest: bool | None = field(default=None, metadata=_meta("bool"))
    log_topic: str | None = field(default=None, metadata=_meta("str"))
    log_level: str | None = field(default=None, metadata=_meta("str"))
    user_config: dict[str, Any] | None = field(default=None, metadata=_meta("map"))
    secrets: dict[str, Any] | None = field(default=None, metadata=_meta("map"))
    parallelism: int | None = field(default=None, metadata=_meta("int"))
    resources: Resources | None = field(default=None, metadata=_meta("Resources"))
    window_config: WindowConfig | None = field(default=None, metadata=_meta("WindowConfig"))
    runtime_flags: str | None = field(default=None, metadata=_meta("str"))
    custom_runtime_options: str | None = field(default=None, metadata=_meta("str"))
    max_pending_async_requests: int | None = field(default=None, metadata=_meta("int"))
    #: Magnetar: run a plain (blocking) function on this many threads.
    concurrency: int | None = field(default=None, metadata=_meta("int"))
    expose_pulsar_admin_client_enabled: bool | None = field(default=None, metadata=_meta("bool"))

    def to_dict(self) -> dict[str, Any]:
        """The config as Pulsar's camelCase mapping, leaving out unset fields."""
        return _to_dict(self)


_NESTED: dict[str, type] = {
    "ConsumerConfig": ConsumerConfig,
    "BatchingConfig": BatchingConfig,
    "ProducerConfig": ProducerConfig,
    "Resources": Resources,
    "WindowConfig": WindowConfig,
}


def _to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        key = f.metadata.get("camel") or _camel(f.name)
        if f.metadata["kind"] in _NESTED:
            value = _to_dict(value)
        elif f.metadata["kind"] == "specmap":
            value = {t: _to_dict(c) for t, c in value.items()}
        out[key] = value
    return out


class _Parser:
    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def bad(self, path: str, value: Any, expected: str) -> None:
        self.problems.append(ConfigProblem(path, value, expected))

    def parse(self, cls: type, data: Any, path: str) -> Any:
        if not isinstance(data, dict):
            self.bad(path or "functionConfig", data, "expected a mapping of field names to values")
            return cls()
        by_camel = {(f.metadata.get("camel") or _camel(f.name)): f for f in fields(cls)}
        aliases = {alias: f for f in fields(cls) for alias in f.metadata.get("aliases", ())}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            f = by_camel.get(key) or aliases.get(key)
            where = f"{path}.{key}" if path else str(key)
            if f is None:
                near = difflib.get_close_matches(str(key), list(by_camel), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                self.bad(where, ConfigError.absent(), f"unknown field{hint}")
                continue
            if value is None:
                continue
            kwargs[f.name] = self.value(f.metadata["kind"], f.metadata["choices"], value, where)
        return cls(**kwargs)

    def value(self, kind: str, choices: tuple[str, ...], value: Any, where: str) -> Any:
        if kind == "str":
            if isinstance(value, str):
                return value
            self.bad(where, value, "expected a string")
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                self.bad(where, value, "expected an integer")
                return None
            try:
                return int(value)
            except ValueError:
                self.bad(where, value, "expected an integer")
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                self.bad(where, value, "expected a number")
                return None
            try:
                return float(value)
            except ValueError:
                self.bad(where, value, "expected a number")
        elif kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            self.bad(where, value, "expected true or false")
        elif kind == "enum":
            if isinstance(value, str):
                for choice in choices:
                    if value.upper() == choice.upper():
                        return choice
            self.bad(where, value, "expected one of " + ", ".join(choices))
        elif kind == "strlist":
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return list(value)
            self.bad(where, value, "expected a list of topic names")
        elif kind == "strmap":
            if isinstance(value, dict) and all(isinstance(k, str) for k in value):
                return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
            self.bad(where, value, "expected a mapping of strings to strings")
        elif kind == "map":
            if isinstance(value, dict):
                return dict(value)
            self.bad(where, value, "expected a mapping")
        elif kind == "specmap":
            if isinstance(value, dict):
                return {
                    str(topic): self.parse(ConsumerConfig, spec, f"{where}[{topic}]")
                    for topic, spec in value.items()
                }
            self.bad(where, value, "expected a mapping of topic names to consumer configs")
        elif kind in _NESTED:
            return self.parse(_NESTED[kind], value, where)
        else:  # pragma: no cover - a programming error in the field table
            raise AssertionError(kind)
        return None


def parse_function_config(data: Any) -> FunctionConfig:
    """Parse a FunctionConfig mapping; raises :class:`ConfigError` naming each bad field."""
    parser = _Parser()
    config = parser.parse(FunctionConfig, data, "")
    if parser.problems:
        raise ConfigError(parser.problems)
    return config
