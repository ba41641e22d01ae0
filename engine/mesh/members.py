"""Members of a mesh validated as what they are, by the same code that validates them alone.

A function goes through :func:`engine.config.parse_function_config` and
:func:`engine.config.resolve`, a source through :func:`engine.io.connector_config.source_spec`,
a sink through :func:`~engine.io.connector_config.sink_spec`; their ``FunctionDetails`` are
what a standalone submission would store. Each problem is reported with the member's
name in front of the field, and every member is checked before any error is raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import ConfigError, parse_function_config, resolve
from engine.config.details import to_details
from engine.config.errors import ConfigProblem
from engine.config.validation import FunctionSpec
from engine.io.connector_config import connector_of, sink_spec, source_spec
from engine.io.details import sink_details, source_details
from engine.io.spec import SourceSpec
from engine.io.transform import transform_of
from engine.mesh.model import MemberKind, MemberSpec, MeshError, MeshSpec
from engine.proto import Function_pb2 as pb

__all__ = ["Endpoint", "ResolvedMember", "resolve_members"]


@dataclass(frozen=True)
class Endpoint:
    """A topic a member reads or writes, with the encoding it declares (``None``: the default)."""

    topic: str
    schema_type: str | None = None
    serde_class_name: str | None = None
    is_pattern: bool = False

    @property
    def encoding(self) -> str | None:
        """What the member declares, as one comparable word; ``None`` when nothing is declared."""
        if self.schema_type:
            return f"schemaType {self.schema_type.upper()}"
        if self.serde_class_name:
            return f"serde {self.serde_class_name}"
        return None


@dataclass(frozen=True)
class ResolvedMember:
    """A member with its validated spec and the details that would be stored for it."""

    member: MemberSpec
    details: pb.FunctionDetails
    inputs: tuple[Endpoint, ...]
    output: Endpoint | None
    function: FunctionSpec | None = None
    source: SourceSpec | None = None

    @property
    def name(self) -> str:
        """The member's name."""
        return self.member.name

    @property
    def kind(self) -> MemberKind:
        """Function, source or sink."""
        return self.member.kind


def _prefixed(member: MemberSpec, exc: ConfigError) -> list[ConfigProblem]:
    where = f"{member.kind.value} {member.name}"
    return [ConfigProblem(f"{where}: {p.field}", p.value, p.expected) for p in exc.problems]


def _function(member: MemberSpec) -> ResolvedMember:
    spec = resolve(parse_function_config(member.config))
    inputs = tuple(
        Endpoint(i.topic, i.schema_type, i.serde_class_name, i.is_regex_pattern) for i in spec.inputs
    )
    output = (
        Endpoint(spec.output, spec.output_schema_type, spec.output_serde_class_name) if spec.output else None
    )
    return ResolvedMember(member, to_details(spec), inputs, output, function=spec)


def _source(member: MemberSpec) -> ResolvedMember:
    spec = source_spec(member.config)
    out = Endpoint(spec.destination_topic, spec.schema_type, spec.serde_class_name)
    return ResolvedMember(member, source_details(spec), (), out, source=spec)


def _sink(member: MemberSpec) -> ResolvedMember:
    spec, configs = sink_spec(member.config)
    type_name, _archive, class_name = connector_of(member.config, "sink")
    inputs = tuple(
        Endpoint(i.topic, i.schema_type, i.serde_class_name, i.is_regex_pattern) for i in spec.inputs
    )
    return ResolvedMember(
        member,
        sink_details(spec, configs, type_name, class_name, transform_of(member.config)),
        inputs,
        None,
        function=spec,
    )


_RESOLVERS = {MemberKind.FUNCTION: _function, MemberKind.SOURCE: _source, MemberKind.SINK: _sink}


def resolve_members(mesh: MeshSpec) -> list[ResolvedMember]:
    """Every member of ``mesh`` validated, in order.

    Raises
    ------
    MeshError
        With every problem of every member, each prefixed by ``<kind> <name>:``.
    """
    problems: list[ConfigProblem] = []
    out: list[ResolvedMember] = []
    for member in mesh.members:
        try:
            out.append(_RESOLVERS[member.kind](member))
        except ConfigError as exc:
            problems.extend(_prefixed(member, exc))
    if problems:
        raise MeshError(problems)
    return out
