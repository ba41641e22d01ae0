"""Errors raised while loading a function's code."""

from __future__ import annotations

__all__ = ["FunctionLoadError"]


class FunctionLoadError(Exception):
    """The function's package, module, class or a dependency could not be loaded.

    The message names what was asked for (the ``--py`` path or the ``className``)
    and why it failed.
    """
