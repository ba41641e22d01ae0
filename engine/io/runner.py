"""Run a source's or a sink's instances in this process, as ``sources|sinks localrun`` do.

Everything that can fail on the user's side (the connector's class or archive, the
config) is checked in :meth:`ConnectorRunner.prepare`, before any broker is started
or connected to.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pulsar

from engine.broker.client import make_client
from engine.broker.embedded import EmbeddedBroker
from engine.config.validation import FunctionSpec
from engine.hotpath import HotPath, load
from engine.instance.secrets import make_secrets_provider
from engine.io.loader import connector_class, new_connector
from engine.io.sink_instance import SinkInstance
from engine.io.source_instance import SourceInstance
from engine.io.spec import SourceSpec
from engine.io.transform import LoadedTransform, TransformSpec, load_transform
from engine.runtime.localrun import LocalRunOptions
from engine.state import StateStore, open_state_store

__all__ = ["ConnectorRunner"]

log = logging.getLogger(__name__)


class ConnectorRunner:
    """Owns the embedded broker (if any), the client, the state store and the connector instances.

    Parameters
    ----------
    spec
        A :class:`SourceSpec`, or a sink's :class:`FunctionSpec`.
    config
        The connector's config (``--source-config`` / ``--sink-config``).
    options
        Where and how to run (as for functions' localrun).
    connector
        ``(type name, archive, class name)`` of the connector.
    transform
        A sink's transform function, if it has one.
    """

    def __init__(
        self,
        spec: SourceSpec | FunctionSpec,
        config: dict[str, Any],
        options: LocalRunOptions,
        connector: tuple[str | None, str | None, str | None],
        transform: TransformSpec | None = None,
    ) -> None:
        self.spec = spec
        self.kind = "source" if isinstance(spec, SourceSpec) else "sink"
        self.config = config
        self.options = options
        self.connector = connector
        self.transform = transform
        self._transform: LoadedTransform | None = None
        self.hot: HotPath = load(options.hotpath)
        self.broker: EmbeddedBroker | None = None
        self.client: pulsar.Client | None = None
        self.state_store: StateStore | None = None
        self.instances: list[Any] = []
        self._cls: type | None = None
        self._stopped = threading.Event()

    @property
    def parallelism(self) -> int:
        """How many instances run."""
        return self.spec.parallelism

    def prepare(self) -> None:
        """Find the connector class and the secrets provider; connect to nothing."""
        type_name, archive, class_name = self.connector
        self._cls = connector_class(self.kind, type_name, archive, class_name, self.options.data_dir)
        if self.transform is not None:
            self._transform = load_transform(self.transform, self.options.data_dir)
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
        if self._cls is None:
            self.prepare()
        assert self._cls is not None
        opts = self.options
        os.makedirs(opts.data_dir, mode=0o700, exist_ok=True)
        if opts.broker is None:
            self.broker = EmbeddedBroker(os.path.join(opts.data_dir, "broker")).start()
            broker_opts = self.broker.options()
        else:
            broker_opts = opts.broker
        self.client = make_client(broker_opts, io_threads=max(1, min(4, self.parallelism)))
        url = (
            opts.state_storage_url or f"sqlite:///{os.path.abspath(os.path.join(opts.data_dir, 'state.db'))}"
        )
        self.state_store = open_state_store(url)
        try:
            for i in range(self.parallelism):
                inst = self._instance(opts.instance_id_offset + i, new_connector(self._cls), broker_opts)
                inst.start()
                self.instances.append(inst)
        except BaseException:
            self.stop()
            raise

    def _instance(self, instance_id: int, connector: Any, broker_opts: Any) -> Any:
        assert self.client is not None
        if isinstance(self.spec, SourceSpec):
            return SourceInstance(
                self.spec,
                instance_id,
                connector,
                self.client,
                self.hot,
                self.state_store,
                self._secrets,
                self.options.instance,
            )
        return SinkInstance(
            self.spec,
            instance_id,
            connector,
            self.config,
            self.client,
            self.hot,
            self.state_store,
            self._secrets,
            self.options.instance,
            broker_opts.capabilities,
            self._instance_transform(),
        )

    def _instance_transform(self) -> LoadedTransform | None:
        """The transform function of one instance (the first reuses the one :meth:`prepare` loaded)."""
        if self.transform is None:
            return None
        loaded, self._transform = self._transform, None
        return loaded or load_transform(self.transform, self.options.data_dir)

    def stop(self) -> None:
        """Stop instances (waiting for records in flight), then the client and the broker."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        threads = [threading.Thread(target=inst.stop) for inst in self.instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self.client is not None:
            try:
                self.client.close()
            except pulsar.PulsarException as exc:
                log.warning("closing the client: %s", exc)
        if self.state_store is not None:
            self.state_store.close()
        if self.broker is not None:
            self.broker.stop()

    def status(self) -> dict[str, Any]:
        """Apache's SourceStatus / SinkStatus: totals and one entry per instance."""
        entries = [inst.status() for inst in self.instances]
        return {
            "numInstances": len(entries),
            "numRunning": sum(1 for e in entries if e["running"]),
            "instances": [{"instanceId": e["instanceId"], "status": e} for e in entries],
        }

    def __enter__(self) -> ConnectorRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
