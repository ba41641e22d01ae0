"""Security of the worker: safe defaults, names, limits and the reserved functions namespace."""

from engine.security.limits import check_submission
from engine.security.names import NAME_RULE, check_name, is_valid_name
from engine.security.reserved import (
    ReservedTopic,
    check_not_reserved,
    is_reserved_topic,
    reserve_namespace,
    reserved_namespaces,
)
from engine.security.settings import SecuritySettings

__all__ = [
    "NAME_RULE",
    "ReservedTopic",
    "SecuritySettings",
    "check_name",
    "check_not_reserved",
    "check_submission",
    "is_reserved_topic",
    "is_valid_name",
    "reserve_namespace",
    "reserved_namespaces",
]
