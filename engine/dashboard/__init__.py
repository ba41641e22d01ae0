"""The web dashboard every worker serves at ``/dashboard``: static page plus the JSON it polls."""

from engine.dashboard.meshes import MeshGraphUnavailable, mesh_graph_svg
from engine.dashboard.overview import cluster_overview
from engine.dashboard.rows import PUBLIC_PATHS, instance_state, local_view, static_file

__all__ = [
    "PUBLIC_PATHS",
    "MeshGraphUnavailable",
    "cluster_overview",
    "instance_state",
    "local_view",
    "mesh_graph_svg",
    "static_file",
]
