"""Background tasks that are kept, and whose failures are logged and acted on.

A fire-and-forget ``asyncio.create_task`` loses its task to the garbage collector and
its exception to a "never retrieved" line at exit. :class:`TaskSupervisor` keeps every
task it starts until it ends, logs a failure with what the task was doing, and for a
long-running duty either restarts it with backoff or reports the failure as fatal so
the owner can stop with a clear message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["TaskSupervisor"]

log = logging.getLogger(__name__)


class TaskSupervisor:
    """Starts, keeps and watches the background tasks of one component.

    Parameters
    ----------
    owner
        Named in every log line (e.g. the worker id).
    on_fatal
        Called with a message when a duty started with ``restart=False`` fails; the
        owner should stop. Without it such a failure is only logged.
    max_backoff
        Upper bound of the delay before a failed duty is restarted, in seconds.
    min_backoff
        The delay before the first restart; it doubles with each further failure.
    """

    def __init__(
        self,
        owner: str,
        on_fatal: Callable[[str], None] | None = None,
        max_backoff: float = 30.0,
        min_backoff: float = 0.5,
    ) -> None:
        self.owner = owner
        self.on_fatal = on_fatal
        self.max_backoff = max_backoff
        self.min_backoff = min_backoff
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Failures seen so far (one-shot tasks and duties alike).
        self.failures = 0

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run ``coro`` once in the background; a failure is logged as ``what`` failing."""
        task = asyncio.create_task(coro, name=f"{self.owner}: {what}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(t, what))
        return task

    def keep(self, duty: Callable[[], Awaitable[None]], what: str, restart: bool = True) -> asyncio.Task[Any]:
        """Run the long-lived ``duty()``; restart it with backoff if it fails (or end fatally).

        A duty that returns normally is not restarted: returning is how it says it is done.
        """
        return self.spawn(self._run_duty(duty, what, restart), what)

    async def _run_duty(self, duty: Callable[[], Awaitable[None]], what: str, restart: bool) -> None:
        delay = self.min_backoff
        while True:
            try:
                await duty()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if not restart:
                    message = f"{self.owner}: {what} failed: {type(exc).__name__}: {exc}"
                    log.critical("%s; stopping", message, exc_info=exc)
                    if self.on_fatal is not None:
                        self.on_fatal(message)
                    return
                log.error(
                    "%s: %s failed (%s: %s); restarting it in %.1f s",
                    self.owner,
                    what,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=exc,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    def _finished(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            log.error("%s: %s failed: %s: %s", self.owner, what, type(exc).__name__, exc, exc_info=exc)

    async def close(self, timeout: float = 10.0) -> None:
        """Cancel every task and wait (up to ``timeout`` s) until they have ended."""
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.warning(
                    "%s: %s did not end within %.0f s of being cancelled",
                    self.owner,
                    task.get_name(),
                    timeout,
                )
