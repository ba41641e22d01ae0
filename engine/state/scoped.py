"""Reads of one function's own state, for its Context.

The Context of a function gets a :class:`ScopedState` bound to the function's
``tenant/namespace/name``: two read calls, closed over the store, and no attribute that
hands the store itself (or another function's namespace) to user code. Writes go
through the instance's write-behind buffer and commit with the batch.

Inside one process nothing is truly out of reach of Python code; functions that must
not see each other run in the process runtime (the README states the trust boundary).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from engine.state.store import StateStore

__all__ = ["ScopedState", "scoped_state"]


class ScopedState(NamedTuple):
    """``get_counter(key)`` and ``get_value(key)`` of one function's state."""

    get_counter: Callable[[str], int | None]
    get_value: Callable[[str], bytes | None]


def scoped_state(store: StateStore, namespace: str) -> ScopedState:
    """Read-only access to ``namespace``'s state in ``store``."""

    def get_counter(key: str) -> int | None:
        return store.get_counter(namespace, key)

    def get_value(key: str) -> bytes | None:
        return store.get_value(namespace, key)

    return ScopedState(get_counter, get_value)
