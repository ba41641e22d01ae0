"""Function packages stored through the broker, by content hash, so every worker can fetch them.

A package is written to the packages topic in 1 MiB parts keyed by its SHA-256; its
location, ``magnetar-package://<sha256>@<base64 id of the first part>``, goes into the
function's metadata. A worker fetches it by reading from that id, checks the hash,
and caches the file under its data directory.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading

import pulsar

from engine.cluster.topics import ClusterTopics

__all__ = ["SCHEME", "PackageError", "PackageStore"]

log = logging.getLogger(__name__)

SCHEME = "magnetar-package://"
_PART = 1 << 20


class PackageError(Exception):
    """A package could not be stored or fetched."""


def _remove_partial(tmp: str, directory: str | None) -> None:
    """Remove what a failed cache write left: the partial file, and the directory made for it."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass  # the open itself failed
    if directory is not None:
        try:
            os.rmdir(directory)
        except OSError as exc:  # another writer put something there meanwhile
            log.debug("keeping %s: %s", directory, exc)


class PackageStore:
    """Put and get function packages through the packages topic."""

    def __init__(self, client: pulsar.Client, topics: ClusterTopics, cache_dir: str) -> None:
        self._client = client
        self._topic = topics.packages
        self._cache = cache_dir
        self._parts_producer: pulsar.Producer | None = None
        self._lock = threading.Lock()

    def put(self, data: bytes, filename: str) -> str:
        """Store ``data``; returns its package path."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if self._parts_producer is None:
                self._parts_producer = self._client.create_producer(
                    self._topic, batching_enabled=False, block_if_queue_full=True
                )
            parts = [data[i : i + _PART] for i in range(0, len(data), _PART)] or [b""]
            first = None
            for index, part in enumerate(parts):
                props = {
                    "sha256": digest,
                    "part": str(index),
                    "parts": str(len(parts)),
                    "filename": os.path.basename(filename),
                }
                msg_id = self._parts_producer.send(part, properties=props, partition_key=digest)
                if first is None:
                    first = msg_id
        assert first is not None
        self._cache_file(digest, os.path.basename(filename), data)
        return f"{SCHEME}{digest}@{base64.urlsafe_b64encode(first.serialize()).decode()}"

    def _cache_file(self, digest: str, filename: str, data: bytes) -> str:
        """Write the package to the cache whole or not at all (a full disk leaves nothing behind)."""
        directory = os.path.join(self._cache, digest)
        made = not os.path.isdir(directory)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, filename or "package")
        if not os.path.exists(path):
            tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
            try:
                with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except OSError:
                _remove_partial(tmp, directory if made else None)
                raise
        return path

    def fetch(self, package_path: str, filename: str) -> str:
        """A local file holding the package at ``package_path`` (downloaded once)."""
        if not package_path.startswith(SCHEME):
            if os.path.isfile(package_path):
                return package_path
            raise PackageError(f"package {package_path!r}: not a stored package and not a local file")
        digest, _, first = package_path[len(SCHEME) :].partition("@")
        cached = os.path.join(self._cache, digest, os.path.basename(filename) or "package")
        if os.path.exists(cached):
            return cached
        start = pulsar.MessageId.deserialize(base64.urlsafe_b64decode(first))
        reader = self._client.create_reader(self._topic, start, start_message_id_inclusive=True)
        chunks: dict[int, bytes] = {}
        total = None
        try:
            while total is None or len(chunks) < total:
                try:
                    msg = reader.read_next(10000)
                except pulsar.Timeout:
                    raise PackageError(f"package {digest}: parts missing on {self._topic}")
                props = msg.properties()
                if props.get("sha256") != digest:
                    continue
                total = int(props["parts"])
                chunks[int(props["part"])] = msg.data()
        finally:
            reader.close()
        data = b"".join(chunks[i] for i in range(total))
        if hashlib.sha256(data).hexdigest() != digest:
            raise PackageError(f"package {digest}: content does not match its hash")
        return self._cache_file(digest, os.path.basename(filename), data)

    def close(self) -> None:
        """Close the producer (blocking: on the event loop, run it in a thread)."""
        if self._parts_producer is not None:
            try:
                self._parts_producer.close()
            except pulsar.PulsarException as exc:  # already closed with the client
                log.debug("closing the packages producer: %s", exc)
