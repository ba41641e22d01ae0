"""Reading a connector's config: each key checked, errors naming the key, the value and what is accepted."""

from __future__ import annotations

from typing import Any

from engine.config.errors import ConfigError, ConfigProblem

__all__ = ["ConnectorConfig"]


class ConnectorConfig:
    """Typed access to a connector's config mapping; :meth:`check` raises every problem at once.

    Parameters
    ----------
    data
        The ``--source-config`` / ``--sink-config`` mapping.
    where
        The flag the keys are reported under (``sourceConfig`` or ``sinkConfig``).
    """

    def __init__(self, data: dict[str, Any] | None, where: str) -> None:
        self.data = dict(data or {})
        self.where = where
        self.problems: list[ConfigProblem] = []

    def _bad(self, key: str, value: Any, expected: str) -> None:
        self.problems.append(ConfigProblem(f"{self.where}.{key}", value, expected))

    def string(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        """A text value."""
        value = self.data.get(key, default)
        if value is None:
            if required:
                self.problems.append(ConfigProblem(f"{self.where}.{key}", None, "required: a string"))
            return None
        if not isinstance(value, str):
            self._bad(key, value, "a string")
            return default
        return value

    def integer(self, key: str, default: int, minimum: int | None = 0) -> int:
        """A whole number (also accepted as digits in a string)."""
        value = self.data.get(key, default)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self._bad(key, value, "a whole number")
            return default
        if minimum is not None and value < minimum:
            self._bad(key, value, f"a whole number >= {minimum}")
            return default
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        """A number (also accepted as a numeric string)."""
        value = self.data.get(key, default)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                self._bad(key, value, "a number")
                return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            self._bad(key, value, f"a number >= {minimum}")
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        """``true``/``false`` (also as strings)."""
        value = self.data.get(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self._bad(key, value, "true or false")
            return default
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        """One of ``choices`` (case-insensitive)."""
        value = self.data.get(key, default)
        if not isinstance(value, str) or value.upper() not in choices:
            self._bad(key, value, "one of " + ", ".join(choices))
            return default
        return value.upper()

    def names(self, key: str) -> list[str]:
        """A comma-separated list of names (or a JSON list)."""
        value = self.data.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [v.strip() for v in value if v.strip()]
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        self._bad(key, value, "comma-separated column names")
        return []

    def mapping(self, key: str) -> dict[str, str]:
        """A mapping of strings."""
        value = self.data.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self._bad(key, value, "a mapping of strings")
            return {}
        return {str(k): v for k, v in value.items()}

    def check(self) -> None:
        """Raise :class:`ConfigError` listing every problem found."""
        if self.problems:
            raise ConfigError(self.problems)
