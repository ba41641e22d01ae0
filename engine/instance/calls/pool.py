"""A small pool of daemon call threads that can be left behind.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the interpreter exits,
so one call that never returns would keep the worker (or a test run) from ever exiting.
The threads here are daemons: an abandoned call does not hold the process up.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["CallPool"]

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None


class CallPool:
    """``concurrency`` daemon threads running submitted calls in order of submission."""

    def __init__(self, concurrency: int, name: str = "call") -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(*args)``; its future holds the result or the exception."""
        if self._closed:
            raise RuntimeError("the call pool is shut down")
        future: Future[Any] = Future()
        self._jobs.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:  # one per thread, put by shutdown
                return
            if self._closed:
                job[0].cancel()
                continue
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the waiter, who decides
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _cancel_queued(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job[0].cancel()

    def shutdown(self) -> None:
        """Cancel queued calls and let each thread end after its current call (without waiting)."""
        self._closed = True
        self._cancel_queued()
        for _ in self._threads:
            self._jobs.put(None)
