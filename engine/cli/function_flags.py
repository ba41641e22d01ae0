"""The ``pulsar-admin functions`` flags shared by localrun, create and update.

Flags that are set override the same fields of ``--function-config-file``. Each flag
also answers to pulsar-admin's older camelCase spelling where it has one. Boolean
flags take ``true``/``false``; ``--cleanup-subscription`` and ``--skip-to-latest`` may
also stand alone (meaning ``true``), as in pulsar-admin.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from engine.config.errors import ConfigError

__all__ = ["add_function_flags", "overrides_from_args"]

# (flags, dest, camelCase field, kind, help)
_FLAGS: list[tuple[tuple[str, ...], str, str, str, str]] = [
    (("--tenant",), "tenant", "tenant", "str", "tenant (default public)"),
    (("--namespace",), "namespace", "namespace", "str", "namespace (default default)"),
    (("--name",), "name", "name", "str", "function name (default: from the class name)"),
    (
        ("--classname", "--className"),
        "classname",
        "className",
        "str",
        "module, module.Class or module.function",
    ),
    (("--py",), "py", "py", "str", "the function's code: a .py, .zip or .whl file"),
    (("-i", "--inputs"), "inputs", "inputs", "csv", "comma-separated input topics"),
    (("--topics-pattern", "--topicsPattern"), "topics_pattern", "topicsPattern", "str", "input topic regex"),
    (
        ("--custom-serde-inputs", "--customSerdeInputs"),
        "custom_serde_inputs",
        "customSerdeInputs",
        "json",
        "JSON map of input topic to SerDe class",
    ),
    (
        ("--custom-schema-inputs", "--customSchemaInputs"),
        "custom_schema_inputs",
        "customSchemaInputs",
        "json",
        "JSON map of input topic to schema type",
    ),
    (
        ("--input-specs", "--inputSpecs"),
        "input_specs",
        "inputSpecs",
        "json",
        "JSON map of topic to ConsumerConfig",
    ),
    (
        ("--input-type-class-name",),
        "input_type_class_name",
        "inputTypeClassName",
        "str",
        "input type class (accepted; Java only)",
    ),
    (("-o", "--output"), "output", "output", "str", "output topic"),
    (
        ("--output-type-class-name",),
        "output_type_class_name",
        "outputTypeClassName",
        "str",
        "output type class (accepted; Java only)",
    ),
    (
        ("--producer-config", "--producerConfig"),
        "producer_config",
        "producerConfig",
        "json",
        "JSON ProducerConfig",
    ),
    (
        ("-st", "--schema-type", "--schemaType"),
        "schema_type",
        "outputSchemaType",
        "str",
        "output schema type",
    ),
    (
        ("--output-serde-classname", "--outputSerdeClassName"),
        "output_serde_classname",
        "outputSerdeClassName",
        "str",
        "output SerDe class",
    ),
    (
        ("--custom-schema-outputs",),
        "custom_schema_outputs",
        "customSchemaOutputs",
        "json",
        "JSON map of output topic to schema",
    ),
    (("--log-topic", "--logTopic"), "log_topic", "logTopic", "str", "topic for the function's log records"),
    (
        ("--processing-guarantees", "--processingGuarantees"),
        "processing_guarantees",
        "processingGuarantees",
        "str",
        "ATLEAST_ONCE, ATMOST_ONCE or MANUAL",
    ),
    (
        ("--retain-ordering", "--retainOrdering"),
        "retain_ordering",
        "retainOrdering",
        "flag",
        "keep input order (Failover subscription)",
    ),
    (
        ("--retain-key-ordering", "--retainKeyOrdering"),
        "retain_key_ordering",
        "retainKeyOrdering",
        "flag",
        "keep per-key order (Key_Shared subscription)",
    ),
    (("--batch-builder", "--batchBuilder"), "batch_builder", "batchBuilder", "str", "DEFAULT or KEY_BASED"),
    (
        ("--forward-source-message-property",),
        "forward_source_message_property",
        "forwardSourceMessageProperty",
        "bool",
        "copy input properties to outputs (true/false)",
    ),
    (("--subs-name", "--subsName"), "subs_name", "subName", "str", "subscription name"),
    (
        ("--subs-position", "--subsPosition"),
        "subs_position",
        "subscriptionPosition",
        "str",
        "Latest or Earliest",
    ),
    (
        ("--cleanup-subscription",),
        "cleanup_subscription",
        "cleanupSubscription",
        "optbool",
        "delete the subscription with the function (alone, or true/false)",
    ),
    (
        ("--skip-to-latest",),
        "skip_to_latest",
        "skipToLatest",
        "optbool",
        "after a failure, start from the latest message (alone, or true/false)",
    ),
    (
        ("--runtime-flags",),
        "runtime_flags",
        "runtimeFlags",
        "str",
        "flags for the instance runtime (accepted; not used by Python instances)",
    ),
    (("--parallelism",), "parallelism", "parallelism", "int", "number of instances"),
    (("--cpu",), "cpu", "resources.cpu", "float", "CPU cores per instance"),
    (("--ram",), "ram", "resources.ram", "int", "RAM bytes per instance"),
    (("--disk",), "disk", "resources.disk", "int", "disk bytes per instance"),
    (
        ("--window-length-count", "--windowLengthCount"),
        "window_length_count",
        "windowConfig.windowLengthCount",
        "int",
        "window size",
    ),
    (
        ("--window-length-duration-ms", "--windowLengthDurationMs"),
        "window_length_duration_ms",
        "windowConfig.windowLengthDurationMs",
        "int",
        "window duration",
    ),
    (
        ("--sliding-interval-count", "--slidingIntervalCount"),
        "sliding_interval_count",
        "windowConfig.slidingIntervalCount",
        "int",
        "window slide",
    ),
    (
        ("--sliding-interval-duration-ms", "--slidingIntervalDurationMs"),
        "sliding_interval_duration_ms",
        "windowConfig.slidingIntervalDurationMs",
        "int",
        "window slide duration",
    ),
    (
        ("--concurrency",),
        "concurrency",
        "concurrency",
        "int",
        "call a blocking function on this many threads",
    ),
    (
        ("--max-pending-async-requests", "--maxPendingAsyncRequests"),
        "max_pending_async_requests",
        "maxPendingAsyncRequests",
        "int",
        "async calls in flight at most (default 1000)",
    ),
    (("--auto-ack", "--autoAck"), "auto_ack", "autoAck", "bool", "ack by the framework (true/false)"),
    (("--timeout-ms", "--timeoutMs"), "timeout_ms", "timeoutMs", "int", "per-message processing timeout"),
    (
        ("--max-message-retries", "--maxMessageRetries"),
        "max_message_retries",
        "maxMessageRetries",
        "int",
        "retries before dead-lettering",
    ),
    (
        ("--dead-letter-topic", "--deadLetterTopic"),
        "dead_letter_topic",
        "deadLetterTopic",
        "str",
        "where messages go after their retries",
    ),
    (("--user-config", "--userConfig"), "user_config", "userConfig", "json", "JSON userConfig"),
    (
        ("--custom-runtime-options",),
        "custom_runtime_options",
        "customRuntimeOptions",
        "str",
        "JSON runtime options",
    ),
    (("--secrets",), "secrets", "secrets", "json", "JSON map of secret name to provider value"),
]


def add_function_flags(parser: argparse.ArgumentParser) -> None:
    """Add the FunctionConfig flags and ``--fqfn`` / ``--function-config-file`` to ``parser``."""
    parser.add_argument("--fqfn", help="tenant/namespace/name (instead of the three flags)")
    parser.add_argument(
        "--function-config-file",
        "--functionConfigFile",
        dest="function_config_file",
        help="YAML or JSON FunctionConfig",
    )
    for flags, dest, _field, kind, help_text in _FLAGS:
        if kind == "flag":
            parser.add_argument(*flags, dest=dest, action="store_true", default=None, help=help_text)
        elif kind == "optbool":
            parser.add_argument(
                *flags, dest=dest, nargs="?", const="true", default=None, metavar="true|false", help=help_text
            )
        else:
            parser.add_argument(*flags, dest=dest, default=None, help=help_text)


def _set(out: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        _set(out.setdefault(head, {}), rest, value)
    else:
        out[head] = value


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The camelCase overrides given on the command line; bad values raise :class:`ConfigError`."""
    out: dict[str, Any] = {}
    for flags, dest, field, kind, _help in _FLAGS:
        value = getattr(args, dest, None)
        if value is None:
            continue
        flag = next((f for f in flags if f.startswith("--") and f[2:].islower()), flags[0])
        if kind == "json":
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ConfigError.single(flag, value, f"expected JSON ({exc})")
        elif kind == "csv":
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif kind in ("bool", "optbool"):
            if value.lower() not in ("true", "false"):
                raise ConfigError.single(flag, value, "expected true or false")
            value = value.lower() == "true"
        _set(out, field, value)
    fqfn = getattr(args, "fqfn", None)
    if fqfn:
        if any(getattr(args, d, None) for d in ("tenant", "namespace", "name")):
            raise ConfigError.single("--fqfn", fqfn, "give --fqfn or --tenant/--namespace/--name, not both")
        parts = fqfn.split("/")
        if len(parts) != 3 or not all(parts):
            raise ConfigError.single("--fqfn", fqfn, "expected tenant/namespace/name")
        out["tenant"], out["namespace"], out["name"] = parts
    return out
