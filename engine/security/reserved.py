"""The worker's internal namespace (``public/functions`` by default), which no function may use.

Workers coordinate through topics in that namespace (metadata, assignments, packages,
election); a function reading or writing them could corrupt the cluster's records.
The set of reserved namespaces is per process; a worker adds its own with
:func:`reserve_namespace`, and child processes inherit it through the environment.
"""

from __future__ import annotations

import os

from engine.config.errors import ConfigError
from engine.config.topics import normalize_topic

__all__ = [
    "ReservedTopic",
    "check_not_reserved",
    "is_reserved_topic",
    "reserve_namespace",
    "reserved_namespaces",
]

_ENV = "MAGNETAR_RESERVED_NAMESPACES"
DEFAULT_NAMESPACE = "public/functions"


class ReservedTopic(ValueError):
    """A topic lies in a worker's internal namespace."""


def _initial() -> set[str]:
    extra = os.environ.get(_ENV, "")
    return {DEFAULT_NAMESPACE, *(ns for ns in extra.split(",") if ns)}


_reserved: set[str] = _initial()


def reserve_namespace(namespace: str) -> None:
    """Reserve ``tenant/namespace`` in this process and in the processes it starts."""
    _reserved.add(namespace)
    os.environ[_ENV] = ",".join(sorted(_reserved - {DEFAULT_NAMESPACE}))


def reserved_namespaces() -> frozenset[str]:
    """Every reserved ``tenant/namespace``."""
    return frozenset(_reserved)


def _namespace_of(topic: str) -> str | None:
    try:
        full = normalize_topic(topic)
    except ValueError:
        return None
    tenant, namespace, _ = full.split("://", 1)[1].split("/", 2)
    return f"{tenant}/{namespace}"


def is_reserved_topic(topic: str, regex: bool = False) -> bool:
    """True when ``topic`` (or, with ``regex``, a topics pattern) lies in a reserved namespace."""
    if regex:
        rest = topic.split("://", 1)[-1]
        return any(rest.startswith(f"{ns}/") for ns in _reserved)
    return _namespace_of(topic) in _reserved


def check_not_reserved(field: str, topic: str, regex: bool = False) -> None:
    """Raise :class:`ConfigError` naming ``field`` if ``topic`` is in a reserved namespace."""
    if is_reserved_topic(topic, regex):
        raise ConfigError.single(field, topic, _reason())


def _reason() -> str:
    names = ", ".join(sorted(_reserved))
    return f"topics in the worker's internal namespace ({names}) cannot be used by functions"
