"""What a function prints, attributed to it: in the thread runtime, lines go to its instance log.

Functions on one worker's thread runtime share the process, and so its ``sys.stdout``
and ``sys.stderr``. :func:`install_routing` replaces both, once, by streams that look up
the writing thread: a thread that :func:`attribute_output` registered for an instance
has its complete lines logged by that instance's logger (``stdout: …`` at INFO,
``stderr: …`` at WARNING, with the function's name in the logger's name); every other
thread writes to the original stream, unchanged.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["RoutedStream", "attribute_output", "install_routing"]

_routes: dict[int, logging.Logger] = {}
_install_lock = threading.Lock()


class RoutedStream(io.TextIOBase):
    """A text stream that sends registered threads' lines to their loggers."""

    def __init__(self, original: TextIO, name: str, level: int) -> None:
        self.original = original
        self._name = name
        self._level = level
        self._partial: dict[int, str] = {}

    def write(self, text: str) -> int:
        ident = threading.get_ident()
        logger = _routes.get(ident)
        if logger is None:
            return self.original.write(text)
        pending = self._partial.pop(ident, "") + text
        *lines, rest = pending.split("\n")
        for line in lines:
            logger.log(self._level, "%s: %s", self._name, line)
        if rest:
            self._partial[ident] = rest
        return len(text)

    def flush(self) -> None:
        ident = threading.get_ident()
        rest = self._partial.pop(ident, "")
        logger = _routes.get(ident)
        if rest and logger is not None:
            logger.log(self._level, "%s: %s", self._name, rest)
        self.original.flush()

    def fileno(self) -> int:
        return self.original.fileno()

    def isatty(self) -> bool:
        return self.original.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def writable(self) -> bool:
        return True


def install_routing() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` by thread (idempotent)."""
    with _install_lock:
        if not isinstance(sys.stdout, RoutedStream):
            sys.stdout = RoutedStream(sys.stdout, "stdout", logging.INFO)
        if not isinstance(sys.stderr, RoutedStream):
            sys.stderr = RoutedStream(sys.stderr, "stderr", logging.WARNING)


@contextmanager
def attribute_output(logger: logging.Logger) -> Iterator[None]:
    """While inside, what this thread prints is logged by ``logger``."""
    install_routing()
    ident = threading.get_ident()
    _routes[ident] = logger
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, RoutedStream):
                stream.flush()
        _routes.pop(ident, None)


def file_handler(path: str) -> logging.Handler:
    """A handler appending to ``path``, created readable by its owner only."""
    import os

    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    stream: Any = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler
