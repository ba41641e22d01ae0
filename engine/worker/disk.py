"""Free space in the worker's data dir, and the headroom Magnetar leaves for the broker.

A worker refuses its own large writes (package uploads and package-cache files) while
they would leave less than the headroom free, so that, in ``magnetar standalone``, the
embedded broker whose storage shares the data dir's file system keeps room to write
(pulsar-lite corrupts its entry log when a write of its own fails with ENOSPC). The
headroom is ``--disk-headroom-mb``; by default the smaller of 5 % of the file system and
64 MiB; 0 turns the check off. The worker's metrics report the free bytes
(``magnetar_worker_data_dir_free_bytes``) and whether they are below the headroom
(``magnetar_worker_data_dir_low_space``).
"""

from __future__ import annotations

import errno
import logging
import os

__all__ = ["DEFAULT_HEADROOM_FRACTION", "DEFAULT_HEADROOM_MAX_BYTES", "DiskSpace", "DiskSpaceLow"]

log = logging.getLogger(__name__)

#: The default headroom: this share of the file system's size ...
DEFAULT_HEADROOM_FRACTION = 0.05
#: ... but never more than this.
DEFAULT_HEADROOM_MAX_BYTES = 64 << 20

_MB = 1 << 20


class DiskSpaceLow(OSError):
    """A write was refused before it started: it would leave less than the headroom free.

    An :class:`OSError` with ``errno`` ENOSPC, so it is answered like a full disk (507).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(errno.ENOSPC, reason)
        self.reason = reason


class DiskSpace:
    """Free space of the file system holding ``path``, checked against a headroom.

    Parameters
    ----------
    path
        The worker's data dir (made before the first check).
    headroom_mb
        MiB to keep free; ``None`` for the default (see the module docstring), 0 for no check.
    """

    def __init__(self, path: str, headroom_mb: float | None = None) -> None:
        if headroom_mb is not None and headroom_mb < 0:
            raise ValueError(f"disk headroom: got {headroom_mb} MB; expected 0 or more")
        self.path = path
        self._headroom_mb = headroom_mb

    def _statvfs(self) -> os.statvfs_result:
        return os.statvfs(self.path)

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use on the data dir's file system."""
        st = self._statvfs()
        return st.f_bavail * st.f_frsize

    def headroom_bytes(self) -> int:
        """The bytes kept free: the setting, or the default for this file system."""
        if self._headroom_mb is not None:
            return int(self._headroom_mb * _MB)
        st = self._statvfs()
        return min(int(st.f_blocks * st.f_frsize * DEFAULT_HEADROOM_FRACTION), DEFAULT_HEADROOM_MAX_BYTES)

    def low(self) -> bool:
        """Whether less than the headroom is free (never, with the check off)."""
        headroom = self.headroom_bytes()
        return headroom > 0 and self.free_bytes() < headroom

    def reserve(self, need: int, what: str) -> None:
        """Refuse a write of ``need`` bytes that would leave less than the headroom free.

        Raises
        ------
        DiskSpaceLow
            With a reason naming ``what``, the bytes needed, free and kept.
        """
        headroom = self.headroom_bytes()
        if headroom == 0:
            return
        free = self.free_bytes()
        if free - need >= headroom:
            return
        reason = (
            f"{what} needs {need / _MB:.1f} MB and the data dir has {free / _MB:.1f} MB free, "
            f"{headroom / _MB:.1f} MB of which are kept for the broker (--disk-headroom-mb)"
        )
        log.warning("refusing a write: %s", reason)
        raise DiskSpaceLow(reason)
