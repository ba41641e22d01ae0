"""A mesh document read, its members validated and its graph checked: what a create or update stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.mesh.forms import parse_mesh
from engine.mesh.fused import fuse_members
from engine.mesh.graph import MeshGraph, check_graph
from engine.mesh.members import ResolvedMember, resolve_members
from engine.mesh.model import MeshSpec

__all__ = ["MeshPlan", "plan_mesh"]


@dataclass(frozen=True)
class MeshPlan:
    """The mesh, its validated members and its graph (with the graph's warnings)."""

    spec: MeshSpec
    members: list[ResolvedMember]
    graph: MeshGraph
    #: What is stored and run: ``members``, with a fused chain as one member (``fuse``).
    stored: list[ResolvedMember]
    #: The graph of ``stored`` (``graph`` itself when nothing is fused).
    stored_graph: MeshGraph

    @property
    def warnings(self) -> list[str]:
        """What the graph checks flagged without rejecting."""
        return list(self.graph.warnings)

    def member(self, name: str) -> ResolvedMember:
        """The resolved member ``name`` (as written, or a fused one)."""
        return next(m for m in [*self.members, *self.stored] if m.name == name)


def plan_mesh(doc: Any, tenant: str | None = None, namespace: str | None = None) -> MeshPlan:
    """Read, validate and check ``doc``; raises :class:`~engine.mesh.model.MeshError` naming every problem."""
    spec = parse_mesh(doc, tenant, namespace)
    members = resolve_members(spec)
    graph = check_graph(members, spec.external_inputs)
    if not spec.fused:
        return MeshPlan(spec, members, graph, members, graph)
    stored = fuse_members(spec, members, graph)
    return MeshPlan(spec, members, graph, stored, check_graph(stored, spec.external_inputs))
