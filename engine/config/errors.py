"""Configuration errors that name the field, the bad value, and what is accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "ConfigProblem"]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: ``field`` had ``value``; ``expected`` says what fits."""

    field: str
    value: Any
    expected: str

    def __str__(self) -> str:
        if self.value is _ABSENT:
            return f"{self.field}: {self.expected}"
        return f"{self.field}: got {self.value!r}; {self.expected}"


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


class ConfigError(ValueError):
    """A function config was rejected; ``problems`` lists every reason."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid function config ({len(self.problems)} {noun}):\n{lines}")

    @classmethod
    def single(cls, field: str, value: Any, expected: str) -> ConfigError:
        """An error with one problem."""
        return cls([ConfigProblem(field, value, expected)])

    @staticmethod
    def absent() -> Any:
        """Marker for a problem about a missing value (no ``got …`` in the message)."""
        return _ABSENT
