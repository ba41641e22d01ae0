"""The web dashboard every worker serves at ``/dashboard``: static page plus the JSON it polls."""

from engine.dashboard.overview import cluster_overview
from engine.dashboard.rows import PUBLIC_PATHS, instance_state, local_view, static_file

__all__ = ["PUBLIC_PATHS", "cluster_overview", "instance_state", "local_view", "static_file"]
