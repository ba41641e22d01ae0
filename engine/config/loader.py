"""Read FunctionConfig files (YAML or JSON) and merge command-line overrides."""

from __future__ import annotations

import os
from typing import Any

import orjson
import yaml

from engine.config.errors import ConfigError
from engine.config.function_config import FunctionConfig, parse_function_config

__all__ = ["build_function_config", "load_config_file", "merge_overrides"]


def load_config_file(path: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON FunctionConfig file; errors name the file and the cause."""
    if not os.path.isfile(path):
        raise ConfigError.single("--function-config-file", path, "no such file")
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        if path.endswith(".json"):
            data = orjson.loads(raw)
        else:
            data = yaml.safe_load(raw)  # YAML is a superset of JSON
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise ConfigError.single("--function-config-file", path, f"cannot be parsed: {exc}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError.single(
            "--function-config-file", path, "expected a mapping of FunctionConfig fields"
        )
    return data


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` on top; nested mappings (resources, …) merge key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if (
            isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and key not in ("userConfig", "secrets")
        ):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def build_function_config(config_file: str | None, overrides: dict[str, Any]) -> FunctionConfig:
    """Parse a config file (if any) with command-line ``overrides`` applied over it."""
    base = load_config_file(config_file) if config_file else {}
    return parse_function_config(merge_overrides(base, overrides))
