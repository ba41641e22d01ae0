"""Hypothesis: any JSON value given as a FunctionConfig gives a spec or a ConfigError, nothing else."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import ConfigError, FunctionSpec, parse_function_config, resolve
from engine.config.function_config import FunctionConfig

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)

# Keys a config really has, so generated objects reach the checks of each field.
_FIELDS = [
    "tenant", "namespace", "name", "className", "inputs", "topicsPattern", "output", "logTopic",
    "processingGuarantees", "userConfig", "secrets", "parallelism", "resources", "retainOrdering",
    "retainKeyOrdering", "autoAck", "maxMessageRetries", "deadLetterTopic", "timeoutMs", "subName",
    "subscriptionPosition", "inputSpecs", "customSerdeInputs", "customSchemaInputs", "outputSerdeClassName",
    "outputSchemaType", "producerConfig", "cleanupSubscription", "windowConfig", "runtimeFlags", "py",
    "customRuntimeOptions", "batchBuilder", "forwardSourceMessageProperty", "jar", "go", "runtime",
]  # fmt: skip
configs = st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=8)
plausible = st.fixed_dictionaries(
    {"className": st.just("m.F"), "inputs": st.just(["in"])},
    optional={f: json_values for f in _FIELDS if f not in ("className", "inputs")},
)


def _parse_and_resolve(value: Any) -> None:
    try:
        config = parse_function_config(value)
        assert isinstance(config, FunctionConfig)
        assert isinstance(resolve(config), FunctionSpec)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError names at least one problem"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value(value: Any) -> None:
    _parse_and_resolve(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_any_object_of_config_fields(value: dict[str, Any]) -> None:
    _parse_and_resolve(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible)
def test_plausible_configs(value: dict[str, Any]) -> None:
    _parse_and_resolve(value)
