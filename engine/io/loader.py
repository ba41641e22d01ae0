"""Find a connector: a built-in by type name, or the user's class from an archive or file."""

from __future__ import annotations

import os
from typing import Any

from engine.config.errors import ConfigError, ConfigProblem
from engine.function.errors import FunctionLoadError
from engine.function.loader import add_code_paths, import_object
from engine.function.package import prepare_package
from engine.io.api import Sink, Source
from engine.io.connectors import BUILTIN_SINKS, BUILTIN_SOURCES

__all__ = ["connector_class", "new_connector"]


def connector_class(
    kind: str, type_name: str | None, archive: str | None, class_name: str | None, data_dir: str
) -> type:
    """The connector class (``kind``: ``source`` or ``sink``); a :class:`ConfigError` names the flag."""
    builtins = BUILTIN_SOURCES if kind == "source" else BUILTIN_SINKS
    flag = f"{kind}Type"
    if type_name:
        if archive or class_name:
            raise ConfigError(
                [ConfigProblem(flag, type_name, "either a built-in type or --archive/--classname, not both")]
            )
        found = builtins.get(type_name)
        if found is None:
            raise ConfigError([ConfigProblem(flag, type_name, "one of " + ", ".join(sorted(builtins)))])
        return found[0]
    if not class_name:
        raise ConfigError(
            [ConfigProblem("className", None, f"required without --{kind}-type: module.Class of your {kind}")]
        )
    paths: list[str] = []
    if archive:
        if not os.path.exists(archive):
            raise ConfigError([ConfigProblem("archive", archive, "an existing .py, .zip or .whl file")])
        paths = prepare_package(archive, os.path.join(data_dir, "packages"))
        add_code_paths(paths)
    cls = import_object(class_name)
    base = Source if kind == "source" else Sink
    method = "read" if kind == "source" else "write"
    if not isinstance(cls, type) or not callable(getattr(cls, method, None)):
        raise FunctionLoadError(
            f"{class_name} is not a {kind} class: it must be a class with {method}() "
            f"(subclass engine.io.{base.__name__})"
        )
    return cls


def new_connector(cls: type) -> Any:
    """One connector object (each instance gets its own)."""
    return cls()
