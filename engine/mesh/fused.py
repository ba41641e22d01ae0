"""``fuse: true``: a chain of function members run in one instance, without their intermediate topics.

:func:`fuse_members` replaces a linear chain of function members (each reading exactly
what the one before writes, and nothing else reading it) by one stored member named
``<first>-fused``: the first member's inputs, subscription and guarantee, the last
member's output, and :class:`FusedChain` as its class, which calls every stage's
function in turn on the same message, in process. The intermediate topics are not
written, so what the stages' SerDes would have done between them is skipped (each
stage gets the object the one before returned), a stage returning ``None`` ends the
message's chain (as it would produce nothing), and the chain has the guarantees of its
first input: the input is acknowledged once the last stage's output is persisted.
All stages must share one package and none may be windowed or asynchronous.

A chain may start with a source (and then end with a sink): it becomes one *source*
member whose records go through every stage and then to the sink in process, with no
topic at all between them (:mod:`engine.mesh.fused_source`).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

from engine.config.errors import ConfigProblem
from engine.function.errors import FunctionLoadError
from engine.function.loader import load_function
from engine.mesh.fused_source import fused_source_member, source_chain_problems
from engine.mesh.graph import MeshGraph
from engine.mesh.members import ResolvedMember, resolve_members
from engine.mesh.model import MemberKind, MemberSpec, MeshError, MeshSpec

__all__ = ["FUSED_CLASS", "STAGES_KEY", "FusedChain", "fuse_members"]

FUSED_CLASS = "engine.mesh.fused.FusedChain"
#: The user-config key listing the stages' class names, in order.
STAGES_KEY = "magnetar.fusedStages"
_OUTPUT_KEYS = ("output", "outputSchemaType", "outputSerdeClassName", "customSchemaOutputs", "producerConfig")


def _with_ends(spec: MeshSpec, members: list[ResolvedMember], graph: MeshGraph) -> list[str]:
    """The names to fuse: ``spec.fused``, and under ``fuse: true`` the source and sink at its ends.

    A source joins when it alone writes what the first function reads and nothing else
    reads it; a sink joins when it alone reads what the last function writes.
    """
    names = [n for n in graph.order() if n in spec.fused]
    if not spec.fuse_ends or not names:
        return names
    kinds = {m.name: m.kind for m in members}
    feeding = graph.upstream(names[0])
    if (
        len(feeding) == 1
        and kinds[feeding[0]] is MemberKind.SOURCE
        and graph.downstream(feeding[0]) == [names[0]]
    ):
        names.insert(0, feeding[0])
    fed = graph.downstream(names[-1])
    if len(fed) == 1 and kinds[fed[0]] is MemberKind.SINK and graph.upstream(fed[0]) == [names[-1]]:
        names.append(fed[0])
    return names


def _kinds_problems(chain: list[ResolvedMember]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    headed = bool(chain) and chain[0].kind is MemberKind.SOURCE
    functions = [m for m in chain if m.kind is MemberKind.FUNCTION]
    if len(chain) < 2 or (not headed and len(functions) < 2) or not functions:
        names = [m.name for m in chain]
        expected = "a source and at least one function" if headed else "at least two function members"
        problems.append(ConfigProblem("fuse", names, f"{expected} to run as one"))
    for i, m in enumerate(chain):
        if m.kind is MemberKind.SOURCE and i != 0:
            problems.append(ConfigProblem("fuse", m.name, "a source only at the head of the chain"))
        elif m.kind is MemberKind.SINK and (i != len(chain) - 1 or not headed):
            problems.append(
                ConfigProblem("fuse", m.name, "a sink only at the end of a chain that starts with a source")
            )
        elif m.kind is MemberKind.FUNCTION and m.function is not None and m.function.window is not None:
            problems.append(
                ConfigProblem("fuse", m.name, "no windowed member (its windows need its own topic)")
            )
    return problems


def _chain(spec: MeshSpec, members: list[ResolvedMember], graph: MeshGraph) -> list[ResolvedMember]:
    by_name = {m.name: m for m in members}
    chain = [by_name[n] for n in _with_ends(spec, members, graph)]
    problems = _kinds_problems(chain)
    for before, after in itertools.pairwise(chain):
        topic = before.output.topic if before.output else None
        if topic is None or [i.topic for i in after.inputs] != [topic] or after.inputs[0].is_pattern:
            problems.append(
                ConfigProblem(
                    "fuse",
                    f"{before.name} -> {after.name}",
                    "each member reads exactly what the one before writes",
                )
            )
            continue
        others = sorted({e.consumer for e in graph.edges if e.topic == topic and e.consumer != after.name})
        if others:
            problems.append(
                ConfigProblem(
                    "fuse", f"{before.name} -> {after.name}", f"{topic} is read by {', '.join(others)} too"
                )
            )
    # Built-in connectors name no package; every other member's code is the one package.
    packages = {m.member.package for m in chain if m.kind is MemberKind.FUNCTION or m.member.package}
    if len(packages) > 1:
        problems.append(
            ConfigProblem("fuse", sorted(p or "" for p in packages), "one package for every fused member")
        )
    if chain and chain[0].kind is MemberKind.SOURCE:
        problems.extend(source_chain_problems(chain))
    if problems:
        raise MeshError(problems)
    return chain


def _fused_function(spec: MeshSpec, chain: list[ResolvedMember]) -> ResolvedMember:
    """The chain of functions as one function member ``<first>-fused`` running :class:`FusedChain`."""
    first, last = chain[0], chain[-1]
    assert first.function is not None
    config = {k: v for k, v in first.member.config.items() if k not in _OUTPUT_KEYS}
    config.update({k: v for k, v in last.member.config.items() if k in _OUTPUT_KEYS})
    user: dict[str, Any] = {}
    for m in chain:
        user.update(m.member.config.get("userConfig") or {})
    user[STAGES_KEY] = [m.function.class_name for m in chain if m.function is not None]
    config.update(
        name=f"{first.name}-fused",
        className=FUSED_CLASS,
        userConfig=user,
        subName=first.function.subscription_name,
    )
    fused_spec = MemberSpec(
        MemberKind.FUNCTION, f"{first.name}-fused", config, first.member.package, first.member.kubernetes
    )
    return resolve_members(MeshSpec(spec.tenant, spec.namespace, spec.name, spec.form, (fused_spec,)))[0]


def fuse_members(spec: MeshSpec, members: list[ResolvedMember], graph: MeshGraph) -> list[ResolvedMember]:
    """``members`` with the fused chain (if the mesh asks for one) replaced by one member.

    A chain of functions becomes one function member; a chain headed by a source (and
    possibly ended by a sink) becomes one source member (:mod:`engine.mesh.fused_source`).
    """
    if not spec.fused:
        return members
    chain = _chain(spec, members, graph)
    first = chain[0]
    if first.kind is MemberKind.SOURCE:
        fused = fused_source_member(spec, chain)
    else:
        fused = _fused_function(spec, chain)
    names = {m.name for m in chain}
    out: list[ResolvedMember] = []
    for m in members:
        if m.name == first.name:
            out.append(fused)
        elif m.name not in names:
            out.append(m)
    return out


class FusedChain:
    """The function of a fused member: every stage's function, in turn, on each input."""

    def __init__(self) -> None:
        self._stages: list[tuple[Callable[..., Any], bool]] | None = None

    def _load(self, context: Any) -> list[tuple[Callable[..., Any], bool]]:
        names = context.get_user_config_value(STAGES_KEY)
        if not isinstance(names, list) or not names:
            raise FunctionLoadError(f"userConfig {STAGES_KEY}: expected the fused stages' class names")
        stages = []
        for name in names:
            loaded = load_function(str(name))
            if loaded.is_async or inspect.iscoroutinefunction(loaded.call):
                raise FunctionLoadError(f"fused stage {name}: an async function cannot be fused")
            stages.append((loaded.call, loaded.pass_context))
        self._stages = stages
        return stages

    def process(self, input: Any, context: Any) -> Any:
        """Run ``input`` through every stage; ``None`` from a stage ends the chain."""
        stages = self._stages if self._stages is not None else self._load(context)
        value = input
        for call, with_context in stages:
            value = call(value, context) if with_context else call(value)
            if value is None:
                return None
        return value
