"""Compiled twins of the hot-path modules, built from ``ext/*.pyx`` (see engine.hotpath.select)."""
