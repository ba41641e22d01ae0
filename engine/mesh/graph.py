"""The pipeline of a mesh as a graph of members joined by topics, and the checks run on it.

An edge goes from a member writing topic *T* to every member reading *T* (by name or by
a ``topicsPattern`` that matches it). Before anything is stored:

- a cycle is an error (it names the members on it);
- a schema or SerDe mismatch on an edge is an error naming both members: both sides
  declare an encoding and they differ;
- an input that no member writes, and that ``externalInputs`` does not declare, is a warning;
- a topic written by two members is flagged (a warning naming both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.config.errors import ConfigProblem
from engine.config.topics import normalize_topic
from engine.mesh.members import Endpoint, ResolvedMember
from engine.mesh.model import MeshError

__all__ = ["Edge", "MeshGraph", "check_graph"]


@dataclass(frozen=True)
class Edge:
    """``producer`` writes ``topic`` and ``consumer`` reads it."""

    producer: str
    consumer: str
    topic: str


@dataclass
class MeshGraph:
    """Members, the edges between them, and what the checks found."""

    members: list[ResolvedMember]
    edges: list[Edge] = field(default_factory=list)
    #: Inputs nobody in the mesh writes: ``(member, topic)``.
    external: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def internal_topics(self) -> list[str]:
        """Topics written by one member and read by another, in order of first appearance."""
        return list(dict.fromkeys(e.topic for e in self.edges))

    def order(self) -> list[str]:
        """Member names, producers before consumers (the graph is acyclic once checked)."""
        names = [m.name for m in self.members]
        indegree = {n: 0 for n in names}
        for e in self.edges:
            indegree[e.consumer] += 1
        ready = [n for n in names if indegree[n] == 0]
        out: list[str] = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for e in self.edges:
                if e.producer == n:
                    indegree[e.consumer] -= 1
                    if indegree[e.consumer] == 0:
                        ready.append(e.consumer)
        return out

    def upstream(self, name: str) -> list[str]:
        """Members that write what ``name`` reads."""
        return sorted({e.producer for e in self.edges if e.consumer == name})

    def downstream(self, name: str) -> list[str]:
        """Members that read what ``name`` writes."""
        return sorted({e.consumer for e in self.edges if e.producer == name})


def _reads(endpoint: Endpoint, topic: str) -> bool:
    if not endpoint.is_pattern:
        return endpoint.topic == topic
    pattern = endpoint.topic
    try:
        return (
            re.fullmatch(pattern, topic) is not None
            or re.fullmatch(normalize_topic(pattern) if "://" not in pattern else pattern, topic) is not None
        )
    except (re.error, ValueError):
        return False


def _find_cycle(names: Iterable[str], edges: list[Edge]) -> list[str] | None:
    succ: dict[str, list[str]] = {}
    for e in edges:
        succ.setdefault(e.producer, []).append(e.consumer)
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack.append(n)
        for m in succ.get(n, []):
            if colour.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if colour.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = 2
        return None

    for n in names:
        if colour.get(n) is None:
            found = visit(n)
            if found:
                return found
    return None


def check_graph(members: list[ResolvedMember], external_inputs: Iterable[str] = ()) -> MeshGraph:
    """The graph of ``members``; raises :class:`MeshError` for a cycle or an encoding mismatch."""
    graph = MeshGraph(members)
    problems: list[ConfigProblem] = []
    external = set()
    for t in external_inputs:
        try:
            external.add(normalize_topic(t))
        except ValueError:
            problems.append(ConfigProblem("externalInputs", t, "a valid topic name"))
    writers: dict[str, list[ResolvedMember]] = {}
    for m in members:
        if m.output is not None:
            writers.setdefault(m.output.topic, []).append(m)
    for topic, ws in writers.items():
        if len(ws) > 1:
            graph.warnings.append(
                f"topic {topic} is written by {len(ws)} members: " + ", ".join(w.name for w in ws)
            )
    for consumer in members:
        for inp in consumer.inputs:
            producers = [
                (p, p.output) for p in members if p.output is not None and _reads(inp, p.output.topic)
            ]
            if not producers and inp.topic not in external:
                graph.external.append((consumer.name, inp.topic))
                graph.warnings.append(
                    f"{consumer.kind.value} {consumer.name} reads {inp.topic}, which no member writes "
                    "(declare it in externalInputs if something outside the mesh does)"
                )
            elif not producers:
                graph.external.append((consumer.name, inp.topic))
            for producer, out in producers:
                graph.edges.append(Edge(producer.name, consumer.name, out.topic))
                if out.encoding and inp.encoding and out.encoding != inp.encoding:
                    problems.append(
                        ConfigProblem(
                            f"{consumer.kind.value} {consumer.name}: inputs[{out.topic}]",
                            inp.encoding,
                            f"{producer.kind.value} {producer.name} writes {out.topic} with {out.encoding}; "
                            "producer and consumer must agree",
                        )
                    )
    cycle = _find_cycle((m.name for m in members), graph.edges)
    if cycle:
        problems.append(
            ConfigProblem("graph", " -> ".join(cycle), "no cycle: a mesh is a pipeline (a DAG) of members")
        )
    if problems:
        raise MeshError(problems)
    return graph
