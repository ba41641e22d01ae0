"""Meshes as the dashboard shows them: each with its ``MeshReady`` condition, its members and their graph.

A mesh's members are components of the overview like any other (their instance rows are
there); a mesh row adds each member's condition, computed from those rows as
``mesh status`` computes it from instance status, and where to fetch the drawn pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.config import ConfigError
from engine.mesh.model import MemberKind
from engine.mesh.plan import plan_mesh
from engine.mesh.record import mesh_key
from engine.mesh.render import render
from engine.mesh.status import member_condition, mesh_condition

if TYPE_CHECKING:
    from engine.worker.worker import Worker

__all__ = ["GRAPH_PATH", "MeshGraphUnavailable", "mesh_graph_svg", "mesh_views"]

#: Where the page fetches a mesh's graph (``{fqmn}`` is ``tenant/namespace/name``).
GRAPH_PATH = "/dashboard/api/meshes/{fqmn}/graph"


class MeshGraphUnavailable(Exception):
    """The mesh's stored document no longer gives a graph (it must be updated)."""


def _as_status(row: dict[str, Any]) -> dict[str, Any]:
    """A dashboard instance row in the fields :func:`member_condition` reads.

    A row the runtime shows as crashed or restarting has failed at least once, even before
    its first restart is counted.
    """
    failed = row.get("state") in ("crashed", "restarting")
    return {
        "running": row.get("state") == "running",
        "error": row.get("reason") or row.get("lastFailure") or "",
        "numRestarts": max(int(row.get("numRestarts", 0) or 0), 1 if failed else 0),
    }


def mesh_views(worker: Worker, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every live mesh with its condition and its members', from the overview's ``components``."""
    by_name = {c["name"]: c for c in components}
    views = []
    for record in sorted(worker.metadata.registry.mesh_items().values(), key=lambda r: r.fqmn):
        members = []
        for m in record.members:
            component = by_name.get(m.fqfn)
            rows = component["instances"] if component is not None else []
            members.append(
                {
                    "name": m.name,
                    "kind": m.kind,
                    "fqfn": m.fqfn,
                    "condition": member_condition(MemberKind(m.kind), [_as_status(r) for r in rows]),
                    "numInstances": len(rows),
                    "numRunning": sum(1 for r in rows if r.get("state") == "running"),
                }
            )
        state, condition = mesh_condition(members)
        views.append(
            {
                "name": record.fqmn,
                "version": record.version,
                "state": state,
                "condition": condition,
                "members": members,
                "warnings": list(record.warnings),
                "graphPath": GRAPH_PATH.format(fqmn=record.fqmn),
            }
        )
    return views


def mesh_graph_svg(worker: Worker, fqmn: str) -> str | None:
    """The SVG drawing of mesh ``fqmn`` (``None`` when no such mesh lives).

    Raises :class:`MeshGraphUnavailable` when the stored document no longer validates.
    """
    record = worker.metadata.registry.mesh(mesh_key(fqmn))
    if record is None:
        return None
    tenant, namespace, _name = fqmn.split("/")
    try:
        plan = plan_mesh(record.document, tenant, namespace)
    except ConfigError as exc:
        raise MeshGraphUnavailable(f"mesh {fqmn}: its stored document no longer validates: {exc}") from exc
    return render(fqmn, plan.stored_graph, "svg")
