"""Cheap process-runtime children: a per-worker fork server that has imported the engine once.

See :mod:`engine.runtime.forkserver.server` (the server process) and
:mod:`engine.runtime.forkserver.client` (the worker's handle on it).
"""

from engine.runtime.forkserver.client import (
    LOST_WITH_SERVER,
    ForkedProcess,
    ForkServer,
    ForkServerError,
    fork_server_enabled,
)

__all__ = ["LOST_WITH_SERVER", "ForkServer", "ForkServerError", "ForkedProcess", "fork_server_enabled"]
