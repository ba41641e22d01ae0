"""Example functions shipped with Magnetar (used by ``magnetar demo`` and the tests)."""
