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
import time
from collections.abc import Callable
from typing import Any

import pulsar

from engine.cluster.topics import ClusterTopics

__all__ = ["PART_SEND_TIMEOUT_MS", "SCHEME", "PackageError", "PackageStore", "PackageStoreUnavailable"]

log = logging.getLogger(__name__)

SCHEME = "magnetar-package://"
_PART = 1 << 20


class PackageError(Exception):
    """A package could not be stored or fetched."""


class PackageStoreUnavailable(Exception):
    """The broker did not store a package's parts (its disk may be full); nothing was recorded."""


#: How long one part may wait for the broker's receipt before the upload fails.
PART_SEND_TIMEOUT_MS = 10_000


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

    def __init__(
        self,
        client: pulsar.Client,
        topics: ClusterTopics,
        cache_dir: str,
        reserve: Callable[[int, str], None] | None = None,
        broker_shares_disk: bool = False,
    ) -> None:
        """``reserve(nbytes, what)`` raises before a write the data dir has no room for;
        ``broker_shares_disk``: the broker stores the parts on the same file system."""
        self._client = client
        self._topic = topics.packages
        self._cache = cache_dir
        self._reserve = reserve or (lambda _n, _what: None)
        self._broker_shares_disk = broker_shares_disk
        self._parts_producer: pulsar.Producer | None = None
        self._lock = threading.Lock()

    def put(self, data: bytes, filename: str) -> str:
        """Store ``data``; returns its package path."""
        digest = hashlib.sha256(data).hexdigest()
        # Refused before anything is written: the parts (on the broker's disk, the data
        # dir's in standalone) and the cached copy.
        self._reserve(len(data) * (2 if self._broker_shares_disk else 1), "the package")
        with self._lock:
            try:
                first = self._send_parts(data, digest, filename)
            except (pulsar.PulsarException, PackageStoreUnavailable) as exc:
                # A producer the broker failed is of no further use: the next upload opens another.
                self._drop_producer()
                raise PackageStoreUnavailable(
                    f"the broker did not store the package ({exc}); nothing was recorded"
                ) from exc
        self._cache_file(digest, os.path.basename(filename), data)
        return f"{SCHEME}{digest}@{base64.urlsafe_b64encode(first.serialize()).decode()}"

    def _send_parts(self, data: bytes, digest: str, filename: str) -> pulsar.MessageId:
        """Send the package's parts; the id of the first (blocking, bounded by a deadline).

        The parts go out asynchronously and are waited for with one deadline: a broker
        that fails its writes (a full disk) drops the connection, and the client would
        otherwise resend each part for as long as it reconnects.
        """
        if self._parts_producer is None:
            self._parts_producer = self._client.create_producer(
                self._topic,
                batching_enabled=False,
                block_if_queue_full=True,
                send_timeout_millis=PART_SEND_TIMEOUT_MS,
            )
        parts = [data[i : i + _PART] for i in range(0, len(data), _PART)] or [b""]
        receipts: list[Any] = [None] * len(parts)
        done = threading.Semaphore(0)

        def receipt(index: int) -> Any:
            def settle(result: pulsar.Result, msg_id: pulsar.MessageId) -> None:
                receipts[index] = msg_id if result == pulsar.Result.Ok else result
                done.release()

            return settle

        for index, part in enumerate(parts):
            props = {
                "sha256": digest,
                "part": str(index),
                "parts": str(len(parts)),
                "filename": os.path.basename(filename),
            }
            self._parts_producer.send_async(part, receipt(index), properties=props, partition_key=digest)
        deadline = time.monotonic() + PART_SEND_TIMEOUT_MS / 1000.0 + len(parts) * 0.5
        for _ in parts:
            if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
                confirmed = sum(r is not None for r in receipts)
                raise PackageStoreUnavailable(
                    f"the broker confirmed {confirmed} of {len(parts)} parts in time"
                )
        failed = [r for r in receipts if isinstance(r, pulsar.Result)]
        if failed:
            raise PackageStoreUnavailable(
                f"the broker refused {len(failed)} of {len(parts)} parts: {failed[0]}"
            )
        first: pulsar.MessageId = receipts[0]
        return first

    def _drop_producer(self) -> None:
        """Forget the producer; it is closed on a thread of its own (a failing broker may not answer)."""
        producer, self._parts_producer = self._parts_producer, None
        if producer is None:
            return

        def close() -> None:
            try:
                producer.close()
            except pulsar.PulsarException as exc:  # the broker closed it already
                log.debug("closing the packages producer: %s", exc)

        threading.Thread(target=close, name="close-packages-producer", daemon=True).start()

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
        self._reserve(len(data), "caching the package")
        return self._cache_file(digest, os.path.basename(filename), data)

    def close(self) -> None:
        """Close the producer (blocking: on the event loop, run it in a thread)."""
        if self._parts_producer is not None:
            try:
                self._parts_producer.close()
            except pulsar.PulsarException as exc:  # already closed with the client
                log.debug("closing the packages producer: %s", exc)
