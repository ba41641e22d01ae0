"""Pulsar's rules for tenant, namespace and function names."""

from __future__ import annotations

import re

from engine.config.errors import ConfigError

__all__ = ["NAME_RULE", "check_name", "is_valid_name"]

# Pulsar's NamedEntity rule: word characters and - = : . only.
_NAME = re.compile(r"^[-=:.\w]+$", re.ASCII)
NAME_RULE = "expected letters, digits, '_', '-', '=', ':' or '.' (not '.' or '..')"


def is_valid_name(value: object) -> bool:
    """True when ``value`` is a valid tenant, namespace or function name."""
    return isinstance(value, str) and bool(_NAME.match(value)) and value not in (".", "..")


def check_name(field: str, value: object) -> str:
    """``value`` if it is a valid name, else a :class:`ConfigError` naming ``field``."""
    if not is_valid_name(value):
        raise ConfigError.single(field, value, NAME_RULE)
    assert isinstance(value, str)
    return value
