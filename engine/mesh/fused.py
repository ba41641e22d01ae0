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
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

from engine.config.errors import ConfigProblem
from engine.function.errors import FunctionLoadError
from engine.function.loader import load_function
from engine.mesh.graph import MeshGraph
from engine.mesh.members import ResolvedMember, resolve_members
from engine.mesh.model import MemberKind, MemberSpec, MeshError, MeshSpec

__all__ = ["FUSED_CLASS", "STAGES_KEY", "FusedChain", "fuse_members"]

FUSED_CLASS = "engine.mesh.fused.FusedChain"
#: The user-config key listing the stages' class names, in order.
STAGES_KEY = "magnetar.fusedStages"
_OUTPUT_KEYS = ("output", "outputSchemaType", "outputSerdeClassName", "customSchemaOutputs", "producerConfig")


def _chain(spec: MeshSpec, members: list[ResolvedMember], graph: MeshGraph) -> list[ResolvedMember]:
    by_name = {m.name: m for m in members}
    order = [n for n in graph.order() if n in spec.fused]
    chain = [by_name[n] for n in order]
    problems: list[ConfigProblem] = []
    if len(chain) < 2:
        problems.append(
            ConfigProblem("fuse", list(spec.fused), "at least two function members to run as one")
        )
    for m in chain:
        if m.kind is not MemberKind.FUNCTION:
            problems.append(ConfigProblem("fuse", m.name, "function members only (not sources or sinks)"))
        elif m.function is not None and m.function.window is not None:
            problems.append(
                ConfigProblem("fuse", m.name, "no windowed member (its windows need its own topic)")
            )
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
    packages = {m.member.package for m in chain}
    if len(packages) > 1:
        problems.append(
            ConfigProblem("fuse", sorted(p or "" for p in packages), "one package for every fused member")
        )
    if problems:
        raise MeshError(problems)
    return chain


def fuse_members(spec: MeshSpec, members: list[ResolvedMember], graph: MeshGraph) -> list[ResolvedMember]:
    """``members`` with the fused chain (if the mesh asks for one) replaced by one member."""
    if not spec.fused:
        return members
    chain = _chain(spec, members, graph)
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
    fused = resolve_members(MeshSpec(spec.tenant, spec.namespace, spec.name, spec.form, (fused_spec,)))[0]
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
