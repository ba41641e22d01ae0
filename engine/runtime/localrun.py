"""Run a function's instances, as ``magnetar functions localrun`` does.

``runtime="thread"`` runs them on threads of this process; ``runtime="process"`` runs
each in a child process of its own (:mod:`engine.runtime.local_children`), which the
command does by default: a function that crashes or hangs its process then costs a
retry of the message it was processing, not the whole run.

Everything that can fail on the user's side (package, module, class, SerDes,
dependencies, the config) is checked in :meth:`LocalRunner.prepare`, before any
broker is started or connected to.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulsar

from engine.broker.client import BrokerOptions, make_client
from engine.broker.embedded import EmbeddedBroker
from engine.config.validation import FunctionSpec
from engine.function.loader import LoadedFunction
from engine.hotpath import HotPath, load
from engine.instance.instance import FunctionInstance
from engine.instance.options import InstanceOptions
from engine.instance.secrets import make_secrets_provider
from engine.runtime.builder import default_ledger, load_code, new_instance
from engine.state import StateStore, open_state_store

if TYPE_CHECKING:
    from engine.runtime.local_children import LocalChildren

__all__ = ["LocalRunOptions", "LocalRunner"]

log = logging.getLogger(__name__)


@dataclass
class LocalRunOptions:
    """Where and how to run: broker, data, state, hot-path twin, metrics, secrets."""

    broker: BrokerOptions | None = None
    data_dir: str = "./magnetar-data"
    state_storage_url: str | None = None
    hotpath: str | None = None
    instance_id_offset: int = 0
    metrics_port: int | None = None
    #: The ``cluster`` label of the metrics.
    cluster_name: str = "standalone"
    secrets_provider: str | None = None
    secrets_provider_config: dict[str, Any] | None = None
    instance: InstanceOptions = field(default_factory=InstanceOptions)
    #: ``"thread"`` (instances on threads of this process) or ``"process"`` (a child each).
    runtime: str = "thread"
    #: The children's log level (process runtime).
    log_level: str = "WARNING"


class LocalRunner:
    """Owns the embedded broker (if any), the client, the state store and the instances."""

    def __init__(self, spec: FunctionSpec, options: LocalRunOptions) -> None:
        self.spec = spec
        self.options = options
        self.hot: HotPath = load(options.hotpath)
        self.broker: EmbeddedBroker | None = None
        self.client: pulsar.Client | None = None
        self.state_store: StateStore | None = None
        #: The thread-runtime instances (empty under the process runtime: see :attr:`children`).
        self.instances: list[FunctionInstance] = []
        #: The process-runtime children.
        self.children: LocalChildren | None = None
        if options.runtime not in ("thread", "process"):
            raise ValueError(f"--runtime {options.runtime!r}: expected thread or process")
        self._functions: list[LoadedFunction] = []
        self._metrics_server: Any = None
        self._stopped = threading.Event()

    def prepare(self) -> None:
        """Load the code, SerDes and secrets provider for every instance; connect to nothing."""
        spec = self.spec
        # Children load their own copy: here the code is only checked, once.
        copies = 1 if self.options.runtime == "process" else spec.parallelism
        self._functions = [load_code(spec, self.options.data_dir, self.hot) for _ in range(copies)]
        self._secrets = make_secrets_provider(
            self.options.secrets_provider, self.options.secrets_provider_config
        )

    @property
    def broker_url(self) -> str:
        """The broker this runner uses."""
        if self.options.broker is not None:
            return self.options.broker.url
        assert self.broker is not None
        return self.broker.url

    def start(self) -> None:
        """Start the broker if embedded, then every instance; raises if any fails to start."""
        if not self._functions:
            self.prepare()
        opts = self.options
        os.makedirs(opts.data_dir, exist_ok=True)
        if opts.broker is None:
            self.broker = EmbeddedBroker(os.path.join(opts.data_dir, "broker")).start()
            broker_opts = self.broker.options()
        else:
            broker_opts = opts.broker
        url = (
            opts.state_storage_url or f"sqlite:///{os.path.abspath(os.path.join(opts.data_dir, 'state.db'))}"
        )
        if opts.runtime == "process":
            self._start_children(broker_opts, url)
            return
        self.client = make_client(broker_opts, io_threads=max(1, min(4, self.spec.parallelism)))
        self.state_store = open_state_store(url)
        try:
            for i, function in enumerate(self._functions):
                instance_id = opts.instance_id_offset + i
                inst = new_instance(
                    self.spec,
                    instance_id,
                    function,
                    self.client,
                    self.hot,
                    self.state_store,
                    self._secrets,
                    dataclasses.replace(
                        opts.instance,
                        crash_ledger=opts.instance.crash_ledger
                        or default_ledger(self.spec, instance_id, opts.data_dir),
                    ),
                    broker_opts.capabilities,
                )
                inst.start()
                self.instances.append(inst)
            self._serve_metrics()
        except BaseException:
            self.stop()
            raise

    def _start_children(self, broker_opts: BrokerOptions, state_url: str) -> None:
        from engine.runtime.local_children import ChildSettings, LocalChildren  # engine.io imports localrun

        opts = self.options
        settings = ChildSettings(
            broker=broker_opts,
            data_dir=opts.data_dir,
            state_storage_url=state_url,
            hotpath=opts.hotpath,
            instance=opts.instance,
            secrets_provider=opts.secrets_provider,
            secrets_provider_config=opts.secrets_provider_config,
            log_level=opts.log_level,
        )
        ids = [opts.instance_id_offset + i for i in range(self.spec.parallelism)]
        self.children = LocalChildren(self.spec, settings, ids)
        try:
            self.children.start()
            self._serve_metrics()
        except BaseException:
            self.stop()
            raise

    def _serve_metrics(self) -> None:
        opts = self.options
        if opts.metrics_port is None:
            return
        from engine.runtime.metrics import serve_metrics

        def running() -> list[Any]:
            return list(self.children.instances) if self.children is not None else list(self.instances)

        self._metrics_server = serve_metrics(opts.metrics_port, running, opts.cluster_name)

    def stop(self) -> None:
        """Stop instances (waiting for in-flight outputs), then the client and broker."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.children is not None:
            self.children.stop()
        threads = [threading.Thread(target=inst.stop) for inst in self.instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self.client is not None:
            try:
                self.client.close()
            except pulsar.PulsarException as exc:
                log.warning("closing the client: %s", exc)
        if self.state_store is not None:
            self.state_store.close()
        if self.broker is not None:
            self.broker.stop()

    def status(self) -> list[dict[str, Any]]:
        """Status of every instance."""
        if self.children is not None:
            return self.children.status()
        return [inst.status() for inst in self.instances]

    def alive(self) -> bool:
        """True while any instance runs (a process-runtime child that died is restarted)."""
        if self.children is not None:
            return self.children.alive()
        return any(inst.is_alive() for inst in self.instances)

    def __enter__(self) -> LocalRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
