"""Small real file systems for fault tests: a size-limited tmpfs, or a read-only one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(where: Path, size: str = "4m", read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``where`` for the block (the tests run as root)."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700" + (",ro" if read_only else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"mounting a tmpfs at {where} failed (root is needed): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
