"""Function Mesh: pipelines of functions, sources and sinks deployed, updated and observed as one unit.

A mesh is read from PIP-66 YAML or a ``FunctionMesh`` resource (:mod:`~engine.mesh.forms`),
its members are validated as a standalone submission would be (:mod:`~engine.mesh.members`),
its graph is checked (:mod:`~engine.mesh.graph`), and it is stored as one versioned
metadata record that owns its members (:mod:`~engine.mesh.record`).

The names below load their module on first use: the metadata registry imports the
record format alone, without the validation stack.
"""

from __future__ import annotations

import importlib
from typing import Any

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

_HOMES = {
    "API_VERSION": "forms",
    "KIND": "forms",
    "parse_mesh": "forms",
    "Edge": "graph",
    "MeshGraph": "graph",
    "check_graph": "graph",
    "Endpoint": "members",
    "ResolvedMember": "members",
    "resolve_members": "members",
    "MemberKind": "model",
    "MemberSpec": "model",
    "MeshError": "model",
    "MeshSpec": "model",
    "MeshPlan": "plan",
    "plan_mesh": "plan",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'engine.mesh' has no attribute {name!r}")
    return getattr(importlib.import_module(f"engine.mesh.{home}"), name)
