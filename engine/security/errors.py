"""Errors of the security settings and tools."""

from __future__ import annotations

__all__ = ["AuthenticationError", "SettingError"]


class SettingError(ValueError):
    """A security setting, key or CLI input was rejected; the message names the field, the
    value given and what would be accepted."""


class AuthenticationError(Exception):
    """The credentials are missing, malformed, expired or not signed by a trusted key."""
