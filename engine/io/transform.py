"""A sink's transform function: a Python function applied to each record before the sink writes it.

Apache's SinkConfig names it with three keys (pulsar-admin's ``--transform-function``,
``--transform-function-classname``, ``--transform-function-config``):

* ``transformFunction``: the function's package, as a function's ``--py`` takes it: a
  ``.py``, ``.zip`` or ``.whl`` file, or a package URL: ``function://``, ``sink://`` or
  ``source://`` (the package registry), ``file://`` (a file on the worker that receives
  the request) or ``http(s)://``. The CLI uploads a local file with the sink (the
  multipart part ``transformFunction``, as ``--archive`` goes in ``data``). The worker
  that receives the sink stores the package in the cluster's package store and records
  where in ``FunctionMetaData.transformFunctionPackageLocation`` (Apache's field), so
  the worker that runs an instance fetches it from there, not from its own disk. Without
  ``transformFunction`` the class is imported from the sink's own package or the
  installed modules;
* ``transformFunctionClassName``: ``module.Class`` or ``module.function``, in any of
  the styles a function may have (``pulsar.Function``, a class with ``process``, a
  plain function, a module with ``process``); required;
* ``transformFunctionConfig``: a JSON object (text or mapping): the function's user
  config (``context.get_user_config_value``).

For each record the function gets the decoded value (and a Context, if it takes one).
What it returns replaces the record's value; ``None`` drops the record, which then
counts as written (its input is acknowledged); an exception fails that record alone
(retried, then dead-lettered). Under EFFECTIVELY_ONCE a failure fails the whole
transaction, as any other failure of a batch does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from engine.config.errors import ConfigError, ConfigProblem
from engine.function.errors import FunctionLoadError
from engine.function.loader import LoadedFunction, add_code_paths, load_function
from engine.function.package import prepare_package
from engine.io.api import Sink, SinkRecord, TransactionalSink
from engine.proto import Function_pb2 as pb

__all__ = [
    "PACKAGE_URL_SCHEMES",
    "TRANSFORM_KEYS",
    "LoadedTransform",
    "TransformSpec",
    "is_package_url",
    "load_transform",
    "transform_of",
    "transformed_sink",
    "with_local_package",
]

#: The SinkConfig keys of a transform function.
TRANSFORM_KEYS = ("transformFunction", "transformFunctionClassName", "transformFunctionConfig")

_PACKAGE_SUFFIXES = (".py", ".zip", ".whl")


@dataclass(frozen=True)
class TransformSpec:
    """A validated transform function: its package (or ``None``), class name and user config."""

    package: str | None
    class_name: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        """The SinkConfig keys (``transformFunctionConfig`` as JSON text, as Apache has it)."""
        out: dict[str, Any] = {"transformFunctionClassName": self.class_name}
        if self.package:
            out["transformFunction"] = self.package
        if self.config:
            out["transformFunctionConfig"] = orjson.dumps(self.config).decode()
        return out

    def to_json(self) -> str:
        """The JSON stored in the sink's details."""
        return orjson.dumps(self.to_config()).decode()

    @classmethod
    def from_json(cls, text: str) -> TransformSpec | None:
        """The transform stored as :meth:`to_json` (``None`` for empty text)."""
        return transform_of(orjson.loads(text)) if text else None


#: Package URLs a worker resolves (into the cluster's package store) when it receives the sink.
PACKAGE_URL_SCHEMES = ("function://", "sink://", "source://", "http://", "https://")
_ACCEPTED = "a .py, .zip or .whl file, or a function://, sink://, source://, file:// or http(s):// URL"


def is_package_url(package: str) -> bool:
    """True for a package a worker fetches (the registry's or an http(s) one), not a file path."""
    return package.startswith(PACKAGE_URL_SCHEMES)


def _package(value: Any, problems: list[ConfigProblem]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(ConfigProblem("transformFunction", value, _ACCEPTED))
        return None
    if value.startswith("builtin://"):
        problems.append(
            ConfigProblem("transformFunction", value, f"{_ACCEPTED} (there are no built-in functions)")
        )
        return None
    if value.startswith(("function://", "sink://", "source://")):
        return value
    if value.startswith(("http://", "https://")):
        if not value.split("?", 1)[0].endswith(_PACKAGE_SUFFIXES):
            problems.append(ConfigProblem("transformFunction", value, "the URL of a .py, .zip or .whl file"))
            return None
        return value
    path = value.removeprefix("file://")
    if not path.endswith(_PACKAGE_SUFFIXES):
        problems.append(ConfigProblem("transformFunction", value, _ACCEPTED))
        return None
    return path


def _user_config(value: Any, problems: list[ConfigProblem]) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            problems.append(ConfigProblem("transformFunctionConfig", value, "a JSON object"))
            return {}
    if not isinstance(value, dict):
        problems.append(ConfigProblem("transformFunctionConfig", value, "a JSON object"))
        return {}
    return dict(value)


def transform_of(config: dict[str, Any]) -> TransformSpec | None:
    """The transform function a SinkConfig mapping names, or ``None``; errors name the key."""
    if not any(config.get(k) not in (None, "") for k in TRANSFORM_KEYS):
        return None
    problems: list[ConfigProblem] = []
    package = _package(config.get("transformFunction"), problems)
    class_name = config.get("transformFunctionClassName")
    if not class_name or not isinstance(class_name, str):
        problems.append(
            ConfigProblem("transformFunctionClassName", class_name, "required: module.Class of the function")
        )
    user_config = _user_config(config.get("transformFunctionConfig"), problems)
    if problems:
        raise ConfigError(problems)
    assert isinstance(class_name, str)
    return TransformSpec(package=package, class_name=class_name, config=user_config)


@dataclass(frozen=True)
class LoadedTransform:
    """The imported transform function and its user config."""

    function: LoadedFunction
    config: dict[str, Any]


def with_local_package(details: pb.FunctionDetails, local: str) -> pb.FunctionDetails:
    """A copy of a sink's ``details`` whose transform function is the package file ``local``.

    A worker fetches the package from the cluster's package store (its location is in
    the metadata) and hands the instance, in a thread or a child process, these details.
    """
    transform = TransformSpec.from_json(details.magnetarTransformFunction)
    if transform is None:
        return details
    out = pb.FunctionDetails()
    out.CopyFrom(details)
    out.magnetarTransformFunction = replace(transform, package=local).to_json()
    return out


def load_transform(spec: TransformSpec, data_dir: str) -> LoadedTransform:
    """Import the transform function, its package (a file here) prepared under ``data_dir``."""
    paths: list[str] = []
    package = spec.package
    if package:
        if is_package_url(package):
            raise ConfigError.single(
                "transformFunction", package, "a .py, .zip or .whl file (a worker resolves package URLs)"
            )
        if not os.path.isfile(package):
            raise ConfigError.single("transformFunction", package, "an existing .py, .zip or .whl file")
        paths = prepare_package(package, os.path.join(data_dir, "packages"))
        add_code_paths(paths)
    loaded = load_function(spec.class_name, paths)
    if loaded.is_async:
        raise FunctionLoadError(
            f"transformFunctionClassName {spec.class_name!r}: a transform function must not be async"
        )
    return LoadedTransform(loaded, spec.config)


def _data_of(value: Any, old: bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return orjson.dumps(value)
    except TypeError:  # not JSON-able: the sink reads the value, the raw payload stays the input's
        return old


class _Transformed(Sink):
    """Writes through ``sink`` after the transform function: dropped records acked, failed ones failed."""

    def __init__(self, sink: Sink, function: LoadedFunction, context: Any) -> None:
        self.sink = sink
        self.function = function
        self.context = context

    def _call(self, value: Any) -> Any:
        fn = self.function
        return fn.call(value, self.context) if fn.pass_context else fn.call(value)

    def _one(self, record: SinkRecord) -> bool:
        """Transform ``record`` in place; false when the function dropped it."""
        out = self._call(record.value)
        if out is None:
            return False
        record.value = out
        record.data = _data_of(out, record.data)
        return True

    def open(self, config: dict[str, Any], context: Any) -> None:
        """The sink is opened by its instance, before it is wrapped."""

    def write(self, records: Sequence[SinkRecord]) -> None:
        """Transform each record, then write those kept; a failing transform fails its record."""
        kept: list[SinkRecord] = []
        for record in records:
            try:
                keep = self._one(record)
            except Exception as exc:  # the user's function failed on this record alone
                record.fail(f"the transform function failed: {type(exc).__name__}: {exc}")
                continue
            if keep:
                kept.append(record)
            else:
                record.ack()
        if kept:
            self.sink.write(kept)

    def close(self) -> None:
        """The sink is closed by its instance."""


class _TransformedTransactional(_Transformed, TransactionalSink):
    """The same for a sink that commits its writes and the input progress together."""

    sink: TransactionalSink

    def committed_progress(self, sink_name: str) -> dict[str, str]:
        """The inner sink's committed progress."""
        return self.sink.committed_progress(sink_name)

    def write_with_progress(
        self,
        records: Sequence[SinkRecord],
        sink_name: str,
        progress: dict[str, tuple[str | None, str]],
    ) -> None:
        """Transform every record (a failure fails the transaction); write the kept ones and the progress."""
        kept = [r for r in records if self._one(r)]
        self.sink.write_with_progress(kept, sink_name, progress)


def transformed_sink(sink: Sink, function: LoadedFunction, context: Any) -> Sink:
    """``sink`` behind ``function`` (keeps a :class:`TransactionalSink` transactional)."""
    if isinstance(sink, TransactionalSink):
        return _TransformedTransactional(sink, function, context)
    return _Transformed(sink, function, context)
