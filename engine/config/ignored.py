"""FunctionConfig fields Magnetar accepts but that have no effect on a Python function.

Pulsar's FunctionConfig carries fields for the Java and Go runtimes, for Kubernetes and
for features Magnetar does not run yet. A config that sets them is valid (so Apache's
files work unchanged); :func:`ignored_fields` names each such field with the reason it
has no effect, and :func:`warn_ignored` logs that once per function and field.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from engine.config.function_config import FunctionConfig

__all__ = ["ignored_fields", "warn_ignored"]

log = logging.getLogger("engine.config")

_JAVA_TYPES = (
    "without a JSON, AVRO, KEY_VALUE or custom schema type it names a Java type; "
    "a Python function's types come from its SerDe or schema type"
)
_RECORD_SCHEMAS = ("JSON", "AVRO", "KEY_VALUE")


def _uses_record(schema_type: str | None) -> bool:
    """Whether a schema type takes a Record class (JSON, AVRO, KEY_VALUE or a custom schema)."""
    if not schema_type:
        return False
    return schema_type.upper() in _RECORD_SCHEMAS or "." in schema_type


def _input_types_unused(c: FunctionConfig) -> bool:
    schema_types = [s.schema_type for s in (c.input_specs or {}).values()]
    schema_types += [v for v in (c.custom_schema_inputs or {}).values()]
    return bool(c.input_type_class_name) and not any(
        _uses_record(t) or (t or "").lstrip().startswith("{") for t in schema_types
    )


def _output_types_unused(c: FunctionConfig) -> bool:
    schema_types = [c.output_schema_type, *(c.custom_schema_outputs or {}).values()]
    return bool(c.output_type_class_name) and not any(
        _uses_record(t) or (t or "").lstrip().startswith("{") for t in schema_types
    )


# (field as written in the config, is it set?, why it has no effect)
_RULES: list[tuple[str, Callable[[FunctionConfig], Any], str]] = [
    ("functionType", lambda c: c.function_type, "built-in function types are not shipped; give py"),
    ("inputTypeClassName", _input_types_unused, _JAVA_TYPES),
    ("outputTypeClassName", _output_types_unused, _JAVA_TYPES),
    (
        "runtimeFlags",
        lambda c: c.runtime_flags,
        "flags for the instance's interpreter are not passed on (instances start from the worker)",
    ),
    (
        "exposePulsarAdminClientEnabled",
        lambda c: c.expose_pulsar_admin_client_enabled,
        "the Python context has no admin client",
    ),
    (
        "producerConfig.cryptoConfig.producerCryptoFailureAction",
        lambda c: (
            c.producer_config
            and c.producer_config.crypto_config
            and str(c.producer_config.crypto_config.get("producerCryptoFailureAction", "")).upper() == "SEND"
        ),
        "SEND: the Python client fails a send it cannot encrypt (FAIL)",
    ),
    (
        "producerConfig.useThreadLocalProducers",
        lambda c: c.producer_config and c.producer_config.use_thread_local_producers,
        "applies to the Java runtime's threads only",
    ),
]

_SPEC_RULES: list[tuple[str, Callable[[Any], Any], str]] = [
    (
        "messagePayloadProcessorConfig",
        lambda s: s.message_payload_processor_config,
        "the Python client has no message payload processor",
    ),
    ("poolMessages", lambda s: s.pool_messages, "applies to the Java client only"),
]


def ignored_fields(config: FunctionConfig) -> list[tuple[str, str]]:
    """``(field, reason)`` for every field of ``config`` that is set but has no effect."""
    out = [(name, why) for name, is_set, why in _RULES if is_set(config)]
    for topic, spec in (config.input_specs or {}).items():
        out.extend((f"inputSpecs[{topic}].{name}", why) for name, is_set, why in _SPEC_RULES if is_set(spec))
    return out


_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


def warn_ignored(fqfn: str, ignored: list[tuple[str, str]]) -> None:
    """Log one warning per function and field of ``ignored`` (the first time it is seen)."""
    for name, why in ignored:
        with _lock:
            if (fqfn, name) in _warned:
                continue
            _warned.add((fqfn, name))
        log.warning("function %s: %s is accepted but has no effect: %s", fqfn, name, why)
