"""Running function instances: local runs and their metrics endpoint."""

from engine.runtime.localrun import LocalRunner, LocalRunOptions

__all__ = ["LocalRunOptions", "LocalRunner"]
