"""Build a :class:`FunctionInstance`: the one way localrun and both runtimes make instances.

:func:`load_code` does everything that can fail on the user's side (package,
dependencies, module, class, SerDes) without touching the broker, so ``localrun``
reports such errors before it starts or connects to anything; :func:`new_instance`
wires a loaded function to a client; :func:`build_instance` does both from a
function's recorded details (the thread runtime inside the worker, and the child
process of the process runtime).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import pulsar

from engine.broker.capabilities import BrokerCapabilities
from engine.config.details import config_from_details
from engine.config.validation import FunctionSpec, resolve
from engine.function.loader import LoadedFunction, add_code_paths, load_function
from engine.function.package import prepare_package
from engine.function.schemas import extra_output_schemas, input_schemas, output_schema
from engine.hotpath import HotPath
from engine.instance.crashes import ledger_path
from engine.instance.instance import FunctionInstance
from engine.instance.options import InstanceOptions
from engine.proto import Function_pb2 as pb
from engine.state.store import StateStore

if TYPE_CHECKING:
    from engine.io.spec import SourceSpec

__all__ = ["build_instance", "default_ledger", "identity_of", "load_code", "new_instance", "spec_of"]


def spec_of(details: pb.FunctionDetails, package_path: str | None = None) -> FunctionSpec:
    """The validated spec of ``details``, with its code at ``package_path`` (a local file)."""
    config = config_from_details(details)
    if package_path:
        config.py = package_path
    return resolve(config)


def identity_of(details: pb.FunctionDetails, package_path: str | None = None) -> FunctionSpec | SourceSpec:
    """The spec a runtime names an instance by: a function's, or a source's or sink's own.

    A source has no inputs, so it is not a valid function config; its SourceSpec carries
    the same identity (tenant, namespace, name, fqfn).
    """
    from engine.io.details import sink_from_details, source_from_details  # engine.io imports localrun

    if details.componentType == pb.FunctionDetails.SOURCE:
        return source_from_details(details, package_path)
    if details.componentType == pb.FunctionDetails.SINK:
        return sink_from_details(details, package_path)[0]
    return spec_of(details, package_path)


def default_ledger(spec: FunctionSpec | SourceSpec, instance_id: int, data_dir: str) -> str:
    """Where an instance of ``spec`` records its inputs in flight (beside its log)."""
    run_dir = os.path.join(os.path.abspath(data_dir), "instances")
    return ledger_path(run_dir, spec.tenant, spec.namespace, spec.name, instance_id)


def load_code(spec: FunctionSpec, data_dir: str, hot: HotPath) -> LoadedFunction:
    """Prepare the package, import the function (newest code wins) and check its SerDes."""
    paths: list[str] = []
    if spec.py:
        paths = prepare_package(spec.py, os.path.join(data_dir, "packages"))
        add_code_paths(paths)
    function = load_function(spec.class_name, paths)
    input_schemas(hot, spec)  # SerDes, schemas and Record classes resolve, or the load fails here
    output_schema(hot, spec)
    extra_output_schemas(hot, spec)
    return function


def new_instance(
    spec: FunctionSpec,
    instance_id: int,
    function: LoadedFunction,
    client: pulsar.Client,
    hot: HotPath,
    state_store: StateStore | None,
    secrets_provider: Any,
    options: InstanceOptions,
    capabilities: BrokerCapabilities,
) -> FunctionInstance:
    """The (not yet started) instance ``instance_id`` of ``spec`` running ``function``."""
    return FunctionInstance(
        spec, instance_id, function, client, hot, state_store, secrets_provider, options, capabilities
    )


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
    capabilities: BrokerCapabilities | None = None,
) -> FunctionInstance:
    """Load the code at ``package_path`` and return the (not yet started) instance."""
    if details.componentType in (pb.FunctionDetails.SOURCE, pb.FunctionDetails.SINK):
        # A source or a sink: same start/stop/status/status_proto surface. Imported here
        # only: engine.io imports localrun, and a function's child need not load the
        # connectors (aiohttp among them).
        from engine.io.details import build_connector_instance

        return build_connector_instance(  # type: ignore[return-value]
            details,
            package_path,
            instance_id,
            client,
            hot,
            state_store,
            secrets_provider,
            options,
            data_dir,
            capabilities,
        )
    spec = spec_of(details, package_path)
    function = load_code(spec, data_dir, hot)
    if options.crash_ledger is None:
        options = dataclasses.replace(options, crash_ledger=default_ledger(spec, instance_id, data_dir))
    return new_instance(
        spec,
        instance_id,
        function,
        client,
        hot,
        state_store,
        secrets_provider,
        options,
        capabilities or BrokerCapabilities.apache(),
    )
