"""The per-message hot path: codecs, dispatch, output batching, acks, state deltas, stats.

Every module here has a compiled twin built from ``ext/``; :func:`load` picks one
(see :mod:`engine.hotpath.select`).
"""

from engine.hotpath.select import PUBLIC, HotPath, default_twin, load, native_available

__all__ = ["PUBLIC", "HotPath", "default_twin", "load", "native_available"]
