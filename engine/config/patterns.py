"""Topic patterns: several ``topicsPattern``/``isRegexPattern`` inputs, with plain topics, as one regex.

The client subscribes either a list of topics or one pattern, and takes the namespace to
watch from the pattern's ``domain://tenant/namespace/`` prefix. Apache's instance opens one
consumer per input spec instead; Magnetar's one subscription covers the same inputs by
joining them into one pattern of one namespace: ``prefix(?:p1|p2|exact\\-topic)``.
"""

from __future__ import annotations

import re

__all__ = ["combined_pattern", "pattern_namespace"]

_PREFIX = re.compile(r"^(persistent|non-persistent)://([^/]+)/([^/]+)/(.+)$")
_SHORT = re.compile(r"^([^/:]+)/([^/]+)/(.+)$")


def pattern_namespace(pattern: str, tenant: str = "public", namespace: str = "default") -> tuple[str, str]:
    """``(prefix, local regex)`` of a pattern: ``("persistent://t/ns/", "in-.*")``.

    A pattern without a domain is persistent; one without a namespace lives in
    ``tenant/namespace``, as topic names do.
    """
    m = _PREFIX.match(pattern)
    if m:
        return f"{m.group(1)}://{m.group(2)}/{m.group(3)}/", m.group(4)
    m = _SHORT.match(pattern)
    if m:
        return f"persistent://{m.group(1)}/{m.group(2)}/", m.group(3)
    return f"persistent://{tenant}/{namespace}/", pattern


def combined_pattern(topics: list[str], patterns: list[str]) -> str:
    """One pattern matching every fully-qualified topic in ``topics`` and every pattern in ``patterns``.

    Raises ``ValueError`` when they are not all in one namespace of one domain.
    """
    if not patterns:
        raise ValueError("no pattern to combine")
    parts = [pattern_namespace(p) for p in patterns] + [pattern_namespace(t) for t in topics]
    prefixes = {prefix for prefix, _ in parts}
    if len(prefixes) != 1:
        raise ValueError(
            "patterns and topics of one function must be in one namespace; got " + ", ".join(sorted(prefixes))
        )
    prefix = prefixes.pop()
    if len(patterns) == 1 and not topics:
        return patterns[0] if patterns[0].startswith(prefix) else prefix + parts[0][1]
    alternatives = [local for _, local in parts[: len(patterns)]]
    alternatives += [re.escape(local) for _, local in parts[len(patterns) :]]
    return prefix + "(?:" + "|".join(alternatives) + ")"
