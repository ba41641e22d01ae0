"""A summary on the terminal of what the Pulsar client wrote to its log file, when it matters.

The client's own log (WARN and above) goes to a file in the data dir; the worker's terminal gets
one line per interval that had errors, naming how many, the latest, and the file. Lines known to
be routine (a probe of an empty topic answered "Topic has no messages") are not counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import TextIO

__all__ = ["ClientLogSummary"]

log = logging.getLogger(__name__)

# Routine lines: reading where an empty cluster topic ends asks for its last message id,
# which the broker answers with an error the code expects and handles.
_ROUTINE = ("Topic has no messages", "Failed to getLastMessageId")


class ClientLogSummary:
    """Follows the client's log file and reports its errors in a line per interval.

    Parameters
    ----------
    path
        The client's log file (it need not exist yet).
    stream
        Where the summary goes; default stderr.
    """

    def __init__(self, path: str, stream: TextIO | None = None) -> None:
        self.path = path
        self.stream = stream if stream is not None else sys.stderr
        try:
            # Only what is written from now on: a restarted worker does not repeat old news.
            self._offset = os.path.getsize(path)
        except FileNotFoundError:
            self._offset = 0

    def _new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next check
        self._offset += end
        return data[:end].decode(errors="replace").splitlines()

    def check(self) -> str | None:
        """Read what was written since the last check; the summary line, if there were errors."""
        errors, warnings = [], 0
        for line in self._new_lines():
            if any(r in line for r in _ROUTINE):
                continue
            if " ERROR " in line:
                errors.append(line)
            elif " WARN " in line:
                warnings += 1
        if not errors:
            return None
        latest = errors[-1].split("| ", 1)[-1].strip()
        also = f" and {warnings} warning(s)" if warnings else ""
        return (
            f"magnetar: the Pulsar client logged {len(errors)} error(s){also}; "
            f"latest: {latest} (all in {self.path})"
        )

    async def run(self, interval: float = 5.0) -> None:
        """Check every ``interval`` seconds until cancelled (file reads off the event loop)."""
        while True:
            await asyncio.sleep(interval)
            try:
                line = await asyncio.to_thread(self.check)
            except OSError as exc:
                log.warning("cannot read the client log %s: %s", self.path, exc)
                continue
            if line:
                print(line, file=self.stream, flush=True)
