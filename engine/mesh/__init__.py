"""Function Mesh: pipelines of functions, sources and sinks deployed, updated and observed as one unit.

A mesh is read from PIP-66 YAML or a ``FunctionMesh`` resource (:mod:`~engine.mesh.forms`),
its members are validated as a standalone submission would be (:mod:`~engine.mesh.members`),
its graph is checked (:mod:`~engine.mesh.graph`), and it is stored as one versioned
metadata record that owns its members (:mod:`~engine.mesh.record`).
"""

from engine.mesh.forms import API_VERSION, KIND, parse_mesh
from engine.mesh.graph import Edge, MeshGraph, check_graph
from engine.mesh.members import Endpoint, ResolvedMember, resolve_members
from engine.mesh.model import MemberKind, MemberSpec, MeshError, MeshSpec
from engine.mesh.plan import MeshPlan, plan_mesh

__all__ = [
    "API_VERSION",
    "KIND",
    "Edge",
    "Endpoint",
    "MemberKind",
    "MemberSpec",
    "MeshError",
    "MeshGraph",
    "MeshPlan",
    "MeshSpec",
    "ResolvedMember",
    "check_graph",
    "parse_mesh",
    "plan_mesh",
    "resolve_members",
]
