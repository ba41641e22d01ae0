"""Resolve a ``className`` to the callable the dispatcher invokes.

Accepted, as in Apache's Python runtime and a little beyond:

* ``module.Class`` where ``Class`` subclasses ``pulsar.Function``: an instance's
  ``process(input, context)``;
* ``module.Class`` of any other class with ``process`` (called with the context
  when it takes two arguments) or with ``__call__`` (a callable class);
* ``module.function``: called as ``function(input)``, or ``function(input, context)``
  when it takes two arguments;
* ``module`` alone: Apache's "native" function, the module's ``process(input)``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.function.errors import FunctionLoadError

__all__ = ["LoadedFunction", "add_code_paths", "import_object", "load_function"]


@dataclass
class LoadedFunction:
    """The user's code, ready to call.

    ``style`` is one of ``"pulsar.Function"``, ``"class"``, ``"callable"``,
    ``"function"`` or ``"module"``. ``is_async`` is true for ``async def process``;
    ``process_batch`` is the function's ``process_batch(inputs, context)``, if it has one.
    """

    call: Callable[..., Any]
    pass_context: bool
    style: str
    target: Any

    @property
    def is_async(self) -> bool:
        """True when calling the function returns a coroutine (``async def``)."""
        call = self.call
        # A callable object's coroutine is its __call__ method.
        return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)

    @property
    def process_batch(self) -> Callable[..., Any] | None:
        """The function's ``process_batch(inputs, context)``, or ``None``."""
        batch = getattr(self.target, "process_batch", None)
        return batch if callable(batch) else None


def add_code_paths(paths: list[str]) -> None:
    """Put ``paths`` at the front of ``sys.path`` (moving them there if already present)."""
    for path in reversed(paths):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def _import_module(name: str, asked: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            raise FunctionLoadError(f"className {asked!r}: no module named {name!r} in the function's code")
        raise FunctionLoadError(
            f"className {asked!r}: importing module {name!r} failed: a dependency is missing "
            f"({exc}); add it to requirements.txt or ship it as a wheel in deps/"
        )
    except Exception as exc:
        raise FunctionLoadError(
            f"className {asked!r}: importing module {name!r} failed: {type(exc).__name__}: {exc}"
        )


def import_object(dotted: str) -> Any:
    """The module or attribute named by ``dotted`` (``pkg.mod`` or ``pkg.mod.Attr``)."""
    if not dotted or dotted.startswith(".") or dotted.endswith("."):
        raise FunctionLoadError(f"className {dotted!r}: expected module, module.Class or module.function")
    if "." in dotted:
        module_name, attr = dotted.rsplit(".", 1)
        module = _import_module(module_name, dotted)
        if hasattr(module, attr):
            return getattr(module, attr)
        try:
            return importlib.import_module(dotted)
        except ModuleNotFoundError:
            raise FunctionLoadError(f"className {dotted!r}: module {module_name!r} has no attribute {attr!r}")
    return _import_module(dotted, dotted)


def _positional_arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes (a large number for ``*args``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    count = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


#: The engine's top-level package (``engine``).
_ENGINE_PACKAGE = __name__.split(".", 1)[0]


def _check_arity(name: str, fn: Callable[..., Any]) -> bool:
    arity = _positional_arity(fn)
    if arity < 1:
        raise FunctionLoadError(f"className {name!r}: the function must take the input as an argument")
    return arity >= 2


def _forget_stale_modules(class_name: str, code_paths: list[str]) -> None:
    """Drop an already imported module of ``class_name`` that came from other code.

    A worker running several versions of a function over time imports the same module
    name from different package directories; the newest code must win. The engine's own
    classes (a fused chain's :class:`~engine.mesh.fused.FusedChain`) are never a
    package's code: dropping them would import the whole engine again inside a running
    worker, with a second copy of every class.
    """
    top = class_name.split(".", 1)[0]
    if top == _ENGINE_PACKAGE:
        return
    module = sys.modules.get(top)
    if module is None:
        return
    origin = os.path.realpath(getattr(module, "__file__", None) or "")
    roots = [os.path.realpath(p) + os.sep for p in code_paths]
    if origin and any(origin.startswith(root) for root in roots):
        return
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            del sys.modules[name]
    importlib.invalidate_caches()


def load_function(class_name: str, code_paths: list[str] | None = None) -> LoadedFunction:
    """Import ``class_name`` and build the callable; raises :class:`FunctionLoadError`.

    With ``code_paths`` (the function's package directories), a module of the same name
    imported earlier from somewhere else is imported again from there.
    """
    if code_paths:
        _forget_stale_modules(class_name, code_paths)
    target = import_object(class_name)
    if isinstance(target, types.ModuleType):
        process = getattr(target, "process", None)
        if not callable(process):
            raise FunctionLoadError(
                f"className {class_name!r}: module has no process(input) function; "
                "name a class or function inside it (module.Class)"
            )
        return LoadedFunction(process, _check_arity(class_name, process), "module", target)
    if inspect.isclass(target):
        try:
            instance = target()
        except Exception as exc:
            raise FunctionLoadError(
                f"className {class_name!r}: could not create an instance with no arguments: "
                f"{type(exc).__name__}: {exc}"
            )
        try:
            import pulsar

            is_pulsar_function = isinstance(instance, pulsar.Function)
        except ImportError:  # pragma: no cover - pulsar-client is a dependency
            is_pulsar_function = False
        process = getattr(instance, "process", None)
        if callable(process):
            if is_pulsar_function:
                return LoadedFunction(process, True, "pulsar.Function", instance)
            return LoadedFunction(process, _check_arity(class_name, process), "class", instance)
        if callable(instance):
            return LoadedFunction(instance, _check_arity(class_name, instance), "callable", instance)
        raise FunctionLoadError(f"className {class_name!r}: the class has neither process() nor __call__()")
    if callable(target):
        return LoadedFunction(target, _check_arity(class_name, target), "function", target)
    raise FunctionLoadError(
        f"className {class_name!r}: names a {type(target).__name__}, not a class, function or module"
    )
