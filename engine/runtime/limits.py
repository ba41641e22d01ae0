"""``resources.ram`` and ``resources.cpu`` of a process-runtime instance, applied to its child.

RAM is enforced by watching: :class:`RamWatch` reads the child's resident set size from
``/proc/PID/statm`` every :attr:`RamWatch.INTERVAL` seconds and, once it passes the
limit, calls back (the process runtime then kills the child with the reason
``exceeded ram 100 MB``, and the crash ledger charges the input in flight). A watch is
exact about the reason, works without privileges and counts what the child's code
allocates in C as well as in Python; between two reads the child may overshoot by what
it allocates in a tenth of a second.

CPU is applied where the platform lets this user do so: a CFS quota of ``cpu`` cores in
a cgroup of the child's own (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``).
Without a writable cgroup file system the limit is not applied and
:func:`apply_cpu_limit` says why (logged once per child).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

__all__ = ["RamWatch", "apply_cpu_limit", "ram_text", "remove_cpu_limit"]

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CGROUP_ROOT = "/sys/fs/cgroup"
_PERIOD_US = 100_000


def ram_text(ram: int) -> str:
    """``resources.ram`` (bytes) as people say it: ``100 MB`` for 100 MiB."""
    return f"{round(ram / 2**20)} MB"


def _rss(pid: int) -> int | None:
    """Resident bytes of ``pid``, ``None`` once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class RamWatch:
    """Calls ``exceeded(rss)`` once when process ``pid`` holds more than ``limit`` bytes."""

    INTERVAL = 0.1

    def __init__(self, pid: int, limit: int, exceeded: Callable[[int], None]) -> None:
        self.pid = pid
        self.limit = limit
        self._exceeded = exceeded
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"ram-watch-{pid}", daemon=True)

    def start(self) -> RamWatch:
        """Start watching (a daemon thread)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the process ended or is being stopped)."""
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(self.INTERVAL):
            rss = _rss(self.pid)
            if rss is None:
                return
            if rss > self.limit:
                self._done.set()
                self._exceeded(rss)
                return


def _cgroup_dir(name: str) -> tuple[str, str] | None:
    """A cgroup directory for ``name`` under a writable cpu hierarchy, and its version."""
    unified = os.path.join(_CGROUP_ROOT, "cgroup.controllers")
    try:
        if os.path.exists(unified):
            with open(unified) as fh:
                if "cpu" in fh.read().split():
                    return os.path.join(_CGROUP_ROOT, "magnetar", name), "v2"
        v1 = os.path.join(_CGROUP_ROOT, "cpu")
        if os.path.exists(os.path.join(v1, "cpu.cfs_quota_us")):
            return os.path.join(v1, "magnetar", name), "v1"
    except OSError as exc:
        log.debug("reading %s: %s", _CGROUP_ROOT, exc)
    return None


def apply_cpu_limit(pid: int, cpu: float, name: str) -> str:
    """Give process ``pid`` at most ``cpu`` cores; returns what was done, or why not."""
    found = _cgroup_dir(name)
    if found is None:
        return "resources.cpu not applied: no cgroup cpu controller here"
    directory, version = found
    quota = max(1000, int(cpu * _PERIOD_US))
    _sweep(os.path.dirname(directory))
    try:
        os.makedirs(directory, exist_ok=True)
        if version == "v2":
            with open(os.path.join(directory, "cpu.max"), "w") as fh:
                fh.write(f"{quota} {_PERIOD_US}")
        else:
            with open(os.path.join(directory, "cpu.cfs_period_us"), "w") as fh:
                fh.write(str(_PERIOD_US))
            with open(os.path.join(directory, "cpu.cfs_quota_us"), "w") as fh:
                fh.write(str(quota))
        with open(os.path.join(directory, "cgroup.procs"), "w") as fh:
            fh.write(str(pid))
    except OSError as exc:
        return f"resources.cpu not applied: {directory}: {exc.strerror or exc}"
    return f"resources.cpu applied: {cpu:g} cores ({version} cgroup {directory})"


def _sweep(parent: str) -> None:
    """Remove the cgroups of children that ended without a stop (a killed worker, a failed start)."""
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            try:
                os.rmdir(entry.path)  # refused (EBUSY) while a process is in it
            except OSError as exc:
                log.debug("keeping cgroup %s: %s", entry.path, exc)


def remove_cpu_limit(name: str) -> None:
    """Remove the (empty, once its process ended) cgroup made for ``name``."""
    found = _cgroup_dir(name)
    if found is None:
        return
    try:
        os.rmdir(found[0])
    except FileNotFoundError:
        return
    except OSError as exc:
        log.debug("removing cgroup %s: %s", found[0], exc)
