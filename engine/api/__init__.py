"""The worker's REST API (Pulsar's /admin/v3/functions and /admin/v2/worker paths)."""

from engine.api.app import build_app, security_of, serve

__all__ = ["build_app", "security_of", "serve"]
