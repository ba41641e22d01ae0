"""The per-message hot path: codecs, dispatch, output batching, acks, state deltas, stats.

Every module here has a compiled twin built from ``ext/``; :func:`load` picks one
(see :mod:`engine.hotpath.select`). What both twins provide, and what a caller may rely
on, is declared in :mod:`engine.hotpath.protocols`; mypy checks both twins against it.
"""

from engine.hotpath.select import PUBLIC, HotPath, default_twin, load, native_available

__all__ = ["PUBLIC", "HotPath", "default_twin", "load", "native_available"]
