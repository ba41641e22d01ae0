"""Pulsar topic names: validation and expansion to the fully-qualified form."""

from __future__ import annotations

import re

__all__ = ["is_valid_topic", "normalize_topic"]

_DOMAINS = ("persistent", "non-persistent")
_PART = re.compile(r"^[A-Za-z0-9_.=:\-]+$")
_LOCAL = re.compile(r"^[^\s/]+$")


def normalize_topic(name: str, tenant: str = "public", namespace: str = "default") -> str:
    """``name`` as ``domain://tenant/namespace/topic``.

    A bare name lives in ``tenant/namespace`` (``public/default`` unless given, as in
    Pulsar); ``t/ns/topic`` gets the ``persistent`` domain. Raises ``ValueError`` with
    the reason when the name is not a valid topic name.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a topic name must be a non-empty string")
    if name != name.strip():
        raise ValueError("a topic name must not start or end with white space")
    domain = "persistent"
    rest = name
    if "://" in name:
        domain, rest = name.split("://", 1)
        if domain not in _DOMAINS:
            raise ValueError(f"unknown topic domain {domain!r}; expected 'persistent' or 'non-persistent'")
    parts = rest.split("/")
    if len(parts) == 1 and "://" not in name:
        parts = [tenant, namespace, parts[0]]
    if len(parts) != 3:
        raise ValueError(
            "expected 'topic', 'tenant/namespace/topic' or 'persistent://tenant/namespace/topic'"
        )
    t, ns, local = parts
    for label, part in (("tenant", t), ("namespace", ns)):
        if not _PART.match(part):
            raise ValueError(f"invalid {label} {part!r} in topic name")
    if not _LOCAL.match(local):
        raise ValueError(f"invalid local topic name {local!r}")
    return f"{domain}://{t}/{ns}/{local}"


def is_valid_topic(name: str) -> bool:
    """True when :func:`normalize_topic` accepts ``name``."""
    try:
        normalize_topic(name)
    except ValueError:
        return False
    return True
