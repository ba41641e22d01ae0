"""Progress of long CLI work: a redrawn bar on a terminal, a few plain lines otherwise.

Progress goes to stderr, so a command's own output on stdout (a table, ``--output json``)
stays clean for scripts.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress", "human_bytes"]

_BAR_WIDTH = 30


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop always returns


class Progress:
    """Progress of one piece of work, as a count towards an optional total.

    Parameters
    ----------
    label
        What is being done, e.g. ``"uploading pkg.py"``.
    total
        The count at completion, or ``None`` when unknown (then only the count is shown).
    unit
        ``"bytes"`` shows counts as sizes; any other word is printed after the count.
    stream
        Where to write; default stderr. A terminal gets a bar redrawn in place, anything
        else a line at each tenth of the total (or each phase) and one at the end.
    min_interval
        Least seconds between two redraws of the bar, so fast loops cost nothing.
    """

    def __init__(
        self,
        label: str,
        total: float | None = None,
        unit: str = "bytes",
        stream: TextIO | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0.0
        self.phase = ""
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._min_interval = min_interval
        self._last_draw = 0.0
        self._last_tenth = 0  # plain output: a line at each further tenth
        self._closed = False
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close("failed" if exc_type is not None else "done")

    def _amount(self, n: float) -> str:
        return human_bytes(n) if self.unit == "bytes" else f"{n:g} {self.unit}"

    def _text(self) -> str:
        text = self.label
        if self.total:
            pct = min(100.0, 100.0 * self.done / self.total)
            text += f": {pct:3.0f}% ({self._amount(self.done)} of {self._amount(self.total)})"
        elif self.done:
            text += f": {self._amount(self.done)}"
        return text + (f" — {self.phase}" if self.phase else "")

    def _draw(self, force: bool = False) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if self._tty:
            if not force and now - self._last_draw < self._min_interval:
                return
            self._last_draw = now
            bar = ""
            if self.total:
                filled = int(_BAR_WIDTH * min(1.0, self.done / self.total))
                bar = "[" + "#" * filled + "." * (_BAR_WIDTH - filled) + "] "
            self.stream.write("\r\x1b[K" + bar + self._text())
            self.stream.flush()
            return
        # Tenths 1 to 9; the line at completion is the one ``close`` writes.
        tenth = min(9, int(10 * self.done / self.total)) if self.total else -1
        if force or tenth > self._last_tenth:
            self._last_tenth = max(tenth, self._last_tenth)
            self.stream.write(self._text() + "\n")
            self.stream.flush()

    def advance(self, n: float) -> None:
        """Count ``n`` more done."""
        self.done += n
        self._draw()

    def update(self, done: float, total: float | None = None) -> None:
        """Set the count done (and the total, once known)."""
        if total is not None:
            self.total = total
        self.done = done
        self._draw()

    def set_phase(self, phase: str) -> None:
        """Say what step the work is at (always shown, on a terminal too)."""
        self.phase = phase
        self._draw(force=True)

    def close(self, outcome: str = "done") -> None:
        """Finish: the last state and ``outcome`` with the time it took, on its own line."""
        if self._closed:
            return
        took = time.monotonic() - self._started
        self.phase = f"{outcome} in {took:.1f}s"
        if self._tty:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
        else:
            self._draw(force=True)
        self._closed = True
