"""Forking a child from the launching process itself while it still has a single thread.

``magnetar functions localrun`` has imported the engine, the client library and gRPC
by the time it starts its children, and under the process runtime it creates no
client or gRPC object of its own before that: it is a fork server already. Starting a
separate fork server first would put that server's own start-up (a fresh
interpreter importing the same modules, about 250 ms) before the first output.
:class:`DirectForks` therefore forks a child straight from the launching process
while that process has one thread, and hands every later launch (a second instance,
a restart: by then the launcher runs threads of its own) to a regular fork server,
started on first use.

The child runs exactly what a fork server's child runs
(:func:`engine.runtime.forkserver.server.run_child`); the launching process is its
parent, so it reaps it itself (:class:`DirectChild`) and the child stops when the
launcher disappears, as any child does.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import time

from engine.runtime.forkserver.client import ForkedProcess, ForkServer
from engine.runtime.forkserver.server import run_child, thread_count

__all__ = ["DirectChild", "DirectForks"]

log = logging.getLogger(__name__)


class DirectChild(ForkedProcess):
    """A child this process forked itself: reaped here with ``waitpid``."""

    POLL_S = 0.01

    def poll(self) -> int | None:
        """The exit code once the child ended (reaping it), else ``None``."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its code is not known
                self._exited(-1, lost=True)
                return self.returncode
            if pid:
                self._exited(os.waitstatus_to_exitcode(status))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the child ends; raises :class:`subprocess.TimeoutExpired`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"child {self.pid}", timeout or 0.0)
            time.sleep(self.POLL_S)
        assert self.returncode is not None
        return self.returncode


class DirectForks(ForkServer):
    """A fork server whose launches fork this very process while it has a single thread."""

    def launch(self, argv: list[str], env: dict[str, str], stderr_fd: int) -> ForkedProcess:
        """Fork the child here if this process has one thread, else through the fork server."""
        if self.state == "new" and thread_count() == 1:
            return self._fork_here(argv, env, stderr_fd)
        return super().launch(argv, env, stderr_fd)

    @staticmethod
    def _fork_here(argv: list[str], env: dict[str, str], stderr_fd: int) -> DirectChild:
        read_end, write_end = os.pipe()
        # As the fork server does: the collector must not walk (and so copy) every
        # inherited page in the child. What exists now is kept for good in this process
        # too, which is the launcher's start-up state.
        gc.collect()
        gc.freeze()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(argv, env, write_end, stderr_fd, [read_end])
        os.close(write_end)
        log.debug("forked child %s from this process", pid)
        return DirectChild(pid, os.fdopen(read_end, "rb"))
