"""One database connection per thread, all closed together."""

from __future__ import annotations

import threading
from typing import Any

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
        """Close every connection of every thread (errors on closing are ignored)."""
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception:
                    pass
            self._all.clear()
        self._local = threading.local()
