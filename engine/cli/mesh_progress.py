"""Progress of ``mesh create`` and ``mesh update``: packages uploaded, members stored, instances running.

Three steps, all on stderr (stdout keeps the worker's answer for scripts):

1. every package the members name by file is counted as it is sent (one bar per package);
2. once the mesh is stored, one line per member says what the write did to it
   (added, changed, removed, unchanged);
3. the mesh's status is polled until every member is ready (``MeshReady``), counting
   instances running, with the members not yet ready and why as the phase.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from engine.cli.http_client import AdminError, call
from engine.cli.progress import Progress

__all__ = ["package_part", "report_stored", "wait_until_ready"]

_CHUNK = 256 * 1024
_POLL_S = 0.25


async def _chunks(path: str, progress: Progress) -> AsyncIterator[bytes]:
    """The file in chunks, counted as each is handed to the connection; closes ``progress`` at the end."""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                progress.advance(len(chunk))
                yield chunk
    except BaseException:
        progress.close("failed")
        raise
    progress.close("sent")


def package_part(form: aiohttp.FormData, path: str, members: list[str]) -> None:
    """Add the package at ``path`` (used by ``members``) to ``form``, streamed with a progress bar."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise AdminError(f"{', '.join(members)}: package {path!r}: {exc.strerror}") from None
    name = os.path.basename(path)
    progress = Progress(f"uploading {name} (for {', '.join(members)})", total=size or None)
    form.add_field("data", _chunks(path, progress), filename=name, content_type="application/octet-stream")


def report_stored(fqmn: str, answer: dict[str, Any]) -> None:
    """One line per member: what the stored write did to it."""
    print(f"stored mesh {fqmn} (version {answer.get('version')})", file=sys.stderr)
    for what in ("added", "changed", "removed", "unchanged"):
        for member in answer.get(what, []):
            print(f"  {what}: {member}", file=sys.stderr)


def _waiting_on(status: dict[str, Any]) -> str:
    pending = [
        f"{m['name']} {m['condition']['state']} ({m['condition']['reason']})"
        for m in status.get("members", [])
        if m["condition"]["state"] != "ready"
    ]
    return "waiting for " + "; ".join(pending) if pending else str(status["condition"]["reason"])


def wait_until_ready(args: argparse.Namespace, fqmn: str, timeout: float) -> bool:
    """Poll the mesh's status until ``MeshReady`` (or ``timeout`` seconds); whether it got ready."""
    path = f"/admin/v3/meshes/{fqmn}/status"
    deadline = time.monotonic() + timeout
    progress = Progress(f"starting mesh {fqmn}", unit="instances running")
    outcome, phase = "failed", ""
    try:
        while True:
            status = call(args, "GET", path)
            members = status.get("members", [])
            progress.update(
                sum(m["numRunning"] for m in members), sum(m["numInstances"] for m in members) or None
            )
            if status.get("state") == "ready":
                outcome = "ready"
                return True
            now = _waiting_on(status)
            if now != phase:
                phase = now
                progress.set_phase(phase)
            if time.monotonic() >= deadline:
                outcome = f"not ready ({phase})"
                return False
            time.sleep(_POLL_S)  # the members start in the background; poll their status
    finally:
        progress.close(outcome)
