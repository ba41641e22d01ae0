"""The package registry: versioned packages and uploaded paths, recorded through the broker.

Package content goes through :class:`engine.cluster.packages.PackageStore` (by content
hash, on the packages topic); the registry records what each name points at on a topic
of its own in the functions namespace, one keyed record per package version (or per
``functions upload --path``), so every worker sees the same registry. A deletion is a
record too. Each call first reads the records written since the last call.

Every method blocks on the broker: call them from a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pulsar

from engine.cluster.packages import PackageStore
from engine.cluster.topic_io import position_key, read_range, topic_end
from engine.packages.names import PackageName

__all__ = ["PackageRecord", "PackageRegistry", "RegistryError"]

_PATH_PREFIX = "path:"


class RegistryError(Exception):
    """A registry request cannot be served; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class PackageRecord:
    """Where a package's content is and what is known about it."""

    location: str
    filename: str
    metadata: dict[str, Any] = field(default_factory=dict)


class PackageRegistry:
    """Versioned packages of one cluster (see the module docstring)."""

    def __init__(self, client: pulsar.Client, namespace: str, store: PackageStore) -> None:
        self._client = client
        self._topic = f"persistent://{namespace}/package-registry"
        self._store = store
        self._records: dict[str, PackageRecord] = {}
        self._last: Any = None
        self._records_producer: Any = None
        self._lock = threading.Lock()

    # -- records ----------------------------------------------------------------------------
    def _catch_up(self) -> None:
        # The end is probed first: pulsar-lite cannot tell a reader whether an empty topic
        # has messages available.
        end = topic_end(self._client, self._topic)
        if end is None or (self._last is not None and position_key(end) <= position_key(self._last)):
            return
        start = self._last if self._last is not None else pulsar.MessageId.earliest
        msgs, self._last = read_range(self._client, self._topic, start, end)
        for msg in msgs:
            key, value = msg.partition_key(), msg.data()
            if not value:
                self._records.pop(key, None)
            else:
                self._records[key] = PackageRecord(**orjson.loads(value))

    def _write(self, key: str, record: PackageRecord | None) -> None:
        if self._records_producer is None:
            self._records_producer = self._client.create_producer(
                self._topic, batching_enabled=False, block_if_queue_full=True
            )
        value = orjson.dumps(record.__dict__) if record is not None else b""
        self._records_producer.send(value, partition_key=key)
        if record is None:
            self._records.pop(key, None)
        else:
            self._records[key] = record

    # -- packages ---------------------------------------------------------------------------
    def upload(self, name: PackageName, data: bytes, filename: str, metadata: dict[str, Any]) -> None:
        """Store version ``name``; a version is written once (409 if it exists)."""
        location = self._store.put(data, filename)
        now = int(time.time() * 1000)
        meta = {**metadata, "createTime": now, "modificationTime": now}
        meta.setdefault("properties", {})
        with self._lock:
            self._catch_up()
            if str(name) in self._records:
                raise RegistryError(409, f"package {name} already exists")
            self._write(str(name), PackageRecord(location, filename, meta))

    def get(self, name: PackageName) -> PackageRecord:
        """The record of version ``name`` (404 if there is none)."""
        with self._lock:
            self._catch_up()
            record = self._records.get(str(name))
        if record is None:
            raise RegistryError(404, f"package {name} does not exist")
        return record

    def download(self, name: PackageName) -> str:
        """A local file holding version ``name``."""
        record = self.get(name)
        return self._store.fetch(record.location, record.filename)

    def update_metadata(self, name: PackageName, metadata: dict[str, Any]) -> None:
        """Replace the description, contact and properties of version ``name``."""
        with self._lock:
            self._catch_up()
            record = self._records.get(str(name))
            if record is None:
                raise RegistryError(404, f"package {name} does not exist")
            meta = {**record.metadata, **metadata, "modificationTime": int(time.time() * 1000)}
            self._write(str(name), PackageRecord(record.location, record.filename, meta))

    def delete(self, name: PackageName) -> None:
        """Forget version ``name`` (its content stays where functions may still use it)."""
        with self._lock:
            self._catch_up()
            if str(name) not in self._records:
                raise RegistryError(404, f"package {name} does not exist")
            self._write(str(name), None)

    def versions(self, name: PackageName) -> list[str]:
        """The versions of ``name`` (404 if it has none)."""
        prefix = name.base + "@"
        with self._lock:
            self._catch_up()
            found = sorted(k[len(prefix) :] for k in self._records if k.startswith(prefix))
        if not found:
            raise RegistryError(404, f"package {name.base} does not exist")
        return found

    def list(self, package_type: str, tenant: str, namespace: str) -> list[str]:
        """The packages of one type in ``tenant/namespace``, as ``type://tenant/namespace/name``."""
        prefix = f"{package_type}://{tenant}/{namespace}/"
        with self._lock:
            self._catch_up()
            return sorted({k.partition("@")[0] for k in self._records if k.startswith(prefix)})

    # -- uploaded paths (``functions upload --path``) ---------------------------------------
    def put_path(self, path: str, data: bytes, filename: str) -> str:
        """Store ``data`` under the user's ``path``; returns its package location."""
        location = self._store.put(data, filename)
        with self._lock:
            self._write(_PATH_PREFIX + path, PackageRecord(location, filename))
        return location

    def is_uploaded_path(self, path: str) -> bool:
        """True if something was uploaded to ``path`` (``functions upload --path``)."""
        with self._lock:
            self._catch_up()
            return _PATH_PREFIX + path in self._records

    def fetch_path(self, path: str) -> str:
        """A local file holding what was uploaded to ``path`` (or stored at that location)."""
        with self._lock:
            self._catch_up()
            record = self._records.get(_PATH_PREFIX + path)
        if record is None:
            return self._store.fetch(path, "package")
        return self._store.fetch(record.location, record.filename)

    def close(self) -> None:
        """Close the producer."""
        with self._lock:
            if self._records_producer is not None:
                self._records_producer.close()
            self._records_producer = None
