"""Errors of the security settings and tools."""

from __future__ import annotations

__all__ = ["SettingError"]


class SettingError(ValueError):
    """A security setting, key or CLI input was rejected; the message names the field, the
    value given and what would be accepted."""
