"""Build a :class:`FunctionInstance` from a function's recorded details.

Used by the thread runtime inside the worker and by the child process of the
process runtime, so both load code and config the same way.
"""

from __future__ import annotations

import os
from typing import Any

import pulsar

from engine.config.details import config_from_details
from engine.config.validation import FunctionSpec, resolve
from engine.function.loader import add_code_paths, load_function
from engine.function.package import prepare_package
from engine.hotpath import HotPath
from engine.instance.instance import FunctionInstance, InstanceOptions
from engine.proto import Function_pb2 as pb
from engine.state.store import StateStore

__all__ = ["build_instance", "spec_of"]


def spec_of(details: pb.FunctionDetails, package_path: str | None = None) -> FunctionSpec:
    """The validated spec of ``details``, with its code at ``package_path`` (a local file)."""
    config = config_from_details(details)
    if package_path:
        config.py = package_path
    return resolve(config)


def build_instance(
    details: pb.FunctionDetails,
    package_path: str | None,
    instance_id: int,
    client: pulsar.Client,
    hot: HotPath,
    state_store: StateStore | None,
    secrets_provider: Any,
    options: InstanceOptions,
    data_dir: str,
) -> FunctionInstance:
    """Load the code at ``package_path`` and return the (not yet started) instance."""
    paths: list[str] = []
    if package_path:
        paths = prepare_package(package_path, os.path.join(data_dir, "packages"))
        add_code_paths(paths)
    spec = spec_of(details, package_path)
    function = load_function(spec.class_name, paths)
    return FunctionInstance(spec, instance_id, function, client, hot, state_store, secrets_provider, options)
