"""Checks every submission passes beyond its own validity: names, reserved topics, limits."""

from __future__ import annotations

from collections.abc import Iterable

from engine.config.errors import ConfigError, ConfigProblem
from engine.config.validation import FunctionSpec
from engine.proto import Function_pb2 as pb
from engine.security.names import NAME_RULE, is_valid_name
from engine.security.reserved import is_reserved_topic, reserved_namespaces
from engine.security.settings import SecuritySettings

__all__ = ["check_submission"]


def _topic_problems(spec: FunctionSpec) -> list[ConfigProblem]:
    reason = (
        f"topics in the worker's internal namespace ({', '.join(sorted(reserved_namespaces()))}) "
        "cannot be used by functions"
    )
    out = [
        ConfigProblem("inputs", i.topic, reason)
        for i in spec.inputs
        if is_reserved_topic(i.topic, i.is_regex_pattern)
    ]
    for field, topic in (
        ("output", spec.output),
        ("logTopic", spec.log_topic),
        ("deadLetterTopic", spec.dead_letter_topic),
    ):
        if topic and is_reserved_topic(topic):
            out.append(ConfigProblem(field, topic, reason))
    return out


def check_submission(
    spec: FunctionSpec,
    settings: SecuritySettings,
    functions: Iterable[tuple[str, pb.FunctionMetaData]],
) -> None:
    """Raise :class:`ConfigError` listing every rule ``spec`` breaks on this worker.

    Parameters
    ----------
    spec
        The resolved function.
    settings
        The worker's limits.
    functions
        ``(fqfn, metadata)`` of the registered functions, to count the tenant's instances
        (the function itself is not counted twice when it is an update).
    """
    problems: list[ConfigProblem] = []
    for field, value in (("tenant", spec.tenant), ("namespace", spec.namespace), ("name", spec.name)):
        if not is_valid_name(value):
            problems.append(ConfigProblem(field, value, NAME_RULE))
    problems += _topic_problems(spec)
    if spec.parallelism > settings.max_parallelism:
        problems.append(
            ConfigProblem(
                "parallelism",
                spec.parallelism,
                f"the worker's limit maxParallelism is {settings.max_parallelism}",
            )
        )
    else:
        fqfn = spec.fqfn
        others = sum(
            max(1, md.functionDetails.parallelism)
            for name, md in functions
            if name != fqfn and md.functionDetails.tenant == spec.tenant
        )
        if others + spec.parallelism > settings.max_instances_per_tenant:
            problems.append(
                ConfigProblem(
                    "parallelism",
                    spec.parallelism,
                    f"tenant {spec.tenant!r} already has {others} instances; the worker's limit "
                    f"maxInstancesPerTenant is {settings.max_instances_per_tenant}",
                )
            )
    if problems:
        raise ConfigError(problems)
