"""One database connection per thread, all closed together."""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["PerThreadConnections"]


class PerThreadConnections:
    """Hands each thread its own connection and remembers them all for :meth:`close_all`."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def current(self) -> Any:
        """This thread's connection, or ``None`` if it has none yet."""
        return getattr(self._local, "conn", None)

    def adopt(self, conn: Any) -> Any:
        """Make ``conn`` this thread's connection; returns it."""
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def close_all(self) -> None:
        """Close every connection of every thread (a failure to close one is logged)."""
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception as exc:  # each driver has its own errors; the rest still close
                    log.warning("closing a state-store connection failed: %s: %s", type(exc).__name__, exc)
            self._all.clear()
        self._local = threading.local()
