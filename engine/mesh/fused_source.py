"""A fused chain headed by a source: one *source* member that runs the stages and the sink in process.

``source -> f -> g [-> sink]`` with ``fuse`` is stored as one source member
``<source>-fused``: the source's connector, config, guarantee and parallelism, and in
its details' ``userConfig`` (under :data:`CHAIN_KEY`) the stages (class name, user
config and secrets of each) and the sink (its connector and config). Its instance
(:class:`~engine.mesh.fused_instance.FusedSourceInstance`) reads the source, calls every
stage on each record and hands the results to the sink's ``write``; no topic is
written between them. Without a sink the last stage's output topic is the member's
destination, published as a source publishes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from engine.config.errors import ConfigProblem
from engine.io.connector_config import connector_of, sink_spec
from engine.io.transform import transform_of
from engine.mesh.members import ResolvedMember, resolve_members
from engine.mesh.model import MemberKind, MemberSpec, MeshSpec
from engine.proto import Function_pb2 as pb

__all__ = ["CHAIN_KEY", "chain_of", "fused_source_member", "source_chain_problems"]

#: The key of a fused source member's ``userConfig`` that describes its stages and sink.
CHAIN_KEY = "magnetar.fusedChain"

_ENCODING_KEYS = ("schemaType", "serdeClassName")


def source_chain_problems(chain: list[ResolvedMember]) -> list[ConfigProblem]:
    """What keeps a source-headed chain from running as one member (its sink's settings)."""
    problems: list[ConfigProblem] = []
    last = chain[-1]
    if last.kind is MemberKind.SINK:
        spec = last.function
        if spec is not None and spec.processing_guarantees == "EFFECTIVELY_ONCE":
            problems.append(
                ConfigProblem(
                    "fuse",
                    last.name,
                    "no EFFECTIVELY_ONCE sink (it commits an input position; fused, it has no input topic)",
                )
            )
        if transform_of(last.member.config) is not None:
            problems.append(
                ConfigProblem("fuse", last.name, "no sink with a transform function (fuse it as a stage)")
            )
    return problems


def _stage(member: ResolvedMember) -> dict[str, Any]:
    spec = member.function
    assert spec is not None
    return {
        "name": member.name,
        "className": spec.class_name,
        "userConfig": dict(spec.user_config or {}),
        "secrets": dict(spec.secrets or {}),
    }


def _sink(member: ResolvedMember) -> dict[str, Any]:
    _spec, configs = sink_spec(member.member.config)
    type_name, _archive, class_name = connector_of(member.member.config, "sink")
    return {"name": member.name, "sinkType": type_name, "className": class_name, "configs": configs}


def fused_source_member(spec: MeshSpec, chain: list[ResolvedMember]) -> ResolvedMember:
    """The source-headed ``chain`` as one source member named ``<source>-fused``."""
    source, rest = chain[0], chain[1:]
    sink = rest[-1] if rest[-1].kind is MemberKind.SINK else None
    stages = [m for m in rest if m.kind is MemberKind.FUNCTION]
    name = f"{source.name}-fused"
    config = dict(source.member.config, name=name)
    if sink is None:  # the last stage's output is where the fused member publishes
        last = stages[-1].function
        assert last is not None and last.output is not None
        for key in _ENCODING_KEYS:
            config.pop(key, None)
        config["topicName"] = last.output
        if last.output_schema_type:
            config["schemaType"] = last.output_schema_type
        elif last.output_serde_class_name:
            config["serdeClassName"] = last.output_serde_class_name
    member = MemberSpec(
        MemberKind.SOURCE,
        name,
        config,
        stages[0].member.package,
        source.member.kubernetes,
        source.member.max_replicas,
    )
    resolved = resolve_members(MeshSpec(spec.tenant, spec.namespace, spec.name, spec.form, (member,)))[0]
    description = {"stages": [_stage(m) for m in stages], "sink": _sink(sink) if sink is not None else None}
    resolved.details.userConfig = orjson.dumps({CHAIN_KEY: description}, option=orjson.OPT_SORT_KEYS).decode()
    if sink is not None:  # nothing is published: no edge leaves the fused member
        resolved = dataclasses.replace(resolved, output=None)
    return resolved


def chain_of(details: pb.FunctionDetails) -> dict[str, Any] | None:
    """The stages and sink a fused source member runs, or ``None`` for any other details."""
    if details.componentType != pb.FunctionDetails.SOURCE or CHAIN_KEY not in details.userConfig:
        return None
    user = orjson.loads(details.userConfig)
    chain = user.get(CHAIN_KEY) if isinstance(user, dict) else None
    return chain if isinstance(chain, dict) else None
