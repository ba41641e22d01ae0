"""Whether an instance's state store answers, as two states with one transition point.

While the store is away every batch that needs it fails (and is retried); logging each
failure would flood the log, so the instance log says it once when the store stops
answering, naming the cause, and once when it answers again, with how many commits failed
in between. Each failure still counts as a system exception in the instance's status.
"""

from __future__ import annotations

import enum
import logging

__all__ = ["StoreHealth", "StoreState"]


class StoreState(enum.Enum):
    """What the instance last saw of its state store."""

    ANSWERING = "answering"
    UNREACHABLE = "unreachable"


class StoreHealth:
    """Tracks commits to one instance's state store and logs each change of :class:`StoreState`.

    Parameters
    ----------
    fqfn
        The function whose instance commits (named in the log lines).
    log
        Where the changes are logged.
    """

    def __init__(self, fqfn: str, log: logging.Logger) -> None:
        self.fqfn = fqfn
        self.log = log
        self.state = StoreState.ANSWERING
        #: Commits that failed since the store stopped answering.
        self.failures = 0

    def failed(self, cause: str) -> None:
        """A commit failed because of the store (not a conflict with another instance)."""
        self.failures += 1
        if self.state is StoreState.ANSWERING:
            self._set_state(StoreState.UNREACHABLE, cause)

    def committed(self) -> None:
        """A commit went through."""
        if self.state is StoreState.UNREACHABLE:
            self._set_state(StoreState.ANSWERING, f"after {self.failures} failed commits")
            self.failures = 0

    def _set_state(self, new: StoreState, why: str) -> None:
        if new is StoreState.UNREACHABLE:
            self.log.warning(
                "%s: the state store does not answer, batches are retried until it does: %s", self.fqfn, why
            )
        else:
            self.log.warning("%s: the state store answers again (%s)", self.fqfn, why)
        self.state = new
