"""The metadata service: function records on the metadata topic, written only by the leader.

Start-up reads the newest snapshot (if any) and then only the records written after
it, so its time does not grow with the topic's history. The leader serialises every
change under one lock: it checks the expected version (first writer wins, the loser
gets :class:`StaleVersion`), writes the record with its epoch, applies it, and every
``snapshot_every`` records writes a new snapshot.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import pulsar
from google.protobuf.message import DecodeError

from engine.cluster.registry import (
    FunctionRegistry,
    MetadataRecord,
    decode_snapshot,
    encode_snapshot,
)
from engine.cluster.topic_io import TopicTailer, TopicWriter, read_range, topic_end
from engine.cluster.topics import ClusterTopics
from engine.mesh.record import MeshChange, MeshRecord, is_mesh_key
from engine.mesh.versions import settle_change
from engine.proto import Function_pb2 as pb

__all__ = ["MetadataService", "record_from_message"]

log = logging.getLogger(__name__)

_PART_BYTES = 1 << 20


def record_from_message(msg: Any) -> MetadataRecord | None:
    """Decode one metadata-topic message; ``None`` (with an error logged) when it cannot be decoded.

    A record nobody can decode must not stop the worker from starting (that would brick
    its data directory): it is skipped, and the caller counts it.
    """
    props = msg.properties()
    data = msg.data()
    try:
        if is_mesh_key(msg.partition_key()):
            return MetadataRecord(
                fqfn=msg.partition_key(),
                metadata=None,
                version=int(props.get("version", "0")),
                epoch=int(props.get("epoch", "0")),
                mesh=MeshRecord.decode(data),
            )
        return MetadataRecord(
            fqfn=msg.partition_key(),
            metadata=pb.FunctionMetaData.FromString(data) if data else None,
            version=int(props.get("version", "0")),
            epoch=int(props.get("epoch", "0")),
        )
    except (DecodeError, ValueError) as exc:
        log.error(
            "skipping undecodable metadata record %r at %s (%d bytes): %s",
            msg.partition_key(),
            msg.message_id(),
            len(data),
            exc,
        )
        return None


class MetadataService:
    """Owns the registry of one worker and keeps it in step with the metadata topic."""

    def __init__(
        self,
        client: pulsar.Client,
        topics: ClusterTopics,
        worker_id: str,
        snapshot_every: int = 1000,
    ) -> None:
        self.client = client
        self.topics = topics
        self.worker_id = worker_id
        self.registry = FunctionRegistry()
        self.snapshot_every = snapshot_every
        self._listeners: list[Callable[[list[str]], None]] = []
        self._tailer: TopicTailer | None = None
        self._writer: TopicWriter | None = None
        self._snap_writer: TopicWriter | None = None
        self._lock = asyncio.Lock()
        self._last_id: Any = pulsar.MessageId.earliest
        self._since_snapshot = 0
        self.startup_seconds = 0.0
        self.startup_records = 0
        #: Records skipped because they could not be decoded (exposed in the worker metrics).
        self.undecodable_records = 0

    def add_listener(self, listener: Callable[[list[str]], None]) -> None:
        """Call ``listener(changed fqfns)`` on the loop after records apply."""
        self._listeners.append(listener)

    # -- start-up ------------------------------------------------------------------------
    def _load_snapshot(self) -> Any | None:
        """Load the newest snapshot; returns the metadata position it covers, or ``None``."""
        end = topic_end(self.client, self.topics.metadata_snapshots)
        if end is None:
            return None
        last, _ = read_range(self.client, self.topics.metadata_snapshots, end, end, inclusive=True)
        props = last[0].properties()
        first = pulsar.MessageId.deserialize(base64.b64decode(props["first"]))
        parts, _ = read_range(self.client, self.topics.metadata_snapshots, first, end, inclusive=True)
        snapshot_id = props["snapshot"]
        chunks: dict[int, bytes] = {}
        for m in parts:
            mp = m.properties()
            if mp.get("snapshot") == snapshot_id and int(mp.get("part", "-1")) >= 0:
                chunks[int(mp["part"])] = m.data()
        if len(chunks) != int(props["parts"]):
            log.warning(
                "snapshot %s incomplete (%d of %s parts); reading the full log",
                snapshot_id,
                len(chunks),
                props["parts"],
            )
            return None
        try:
            functions, tombstones, meshes = decode_snapshot(b"".join(chunks[i] for i in sorted(chunks)))
        except (DecodeError, ValueError, struct.error) as exc:
            log.error("snapshot %s cannot be decoded (%s); reading the full log", snapshot_id, exc)
            self.undecodable_records += 1
            return None
        self.registry.load_snapshot(functions, tombstones, int(props.get("epoch", "0")), meshes)
        return pulsar.MessageId.deserialize(base64.b64decode(props["position"]))

    def load(self) -> None:
        """Blocking start-up: snapshot, then the records after it (run in a thread)."""
        t0 = time.perf_counter()
        start = self._load_snapshot() or pulsar.MessageId.earliest
        end = topic_end(self.client, self.topics.metadata)
        msgs, last = read_range(self.client, self.topics.metadata, start, end)
        for msg in msgs:
            record = self._decode(msg)
            if record is not None:
                self.registry.apply(record)
        self._last_id = last
        self.startup_records = len(msgs)
        self.startup_seconds = time.perf_counter() - t0

    async def start(self) -> None:
        """Load, then follow the topic."""
        await asyncio.to_thread(self.load)
        self._tailer = TopicTailer(
            self.client, self.topics.metadata, self._last_id, asyncio.get_running_loop(), self._on_batch
        )
        self._tailer.start()

    def stop(self) -> None:
        """Stop following the topic and close the writers (blocking: run it in a thread)."""
        if self._tailer is not None:
            self._tailer.stop()
        for writer in (self._writer, self._snap_writer):
            if writer is not None:
                writer.close()

    def _decode(self, msg: Any) -> MetadataRecord | None:
        record = record_from_message(msg)
        if record is None:
            self.undecodable_records += 1
        return record

    def _on_batch(self, msgs: list[Any]) -> None:
        changed = []
        for msg in msgs:
            record = self._decode(msg)
            if record is not None and self.registry.apply(record):
                changed.append(record.fqfn)
            self._last_id = msg.message_id()
        if changed:
            for listener in self._listeners:
                listener(changed)

    # -- leader writes -----------------------------------------------------------------------
    async def propose(
        self, fqfn: str, metadata: pb.FunctionMetaData | None, expected_version: int | None, epoch: int
    ) -> int:
        """Record a new version of ``fqfn`` (``None`` deletes it); only the leader calls this."""
        async with self._lock:
            version = self.registry.next_version(fqfn, expected_version)
            if self._writer is None:
                # Creating a writer creates a producer: a blocking client call.
                self._writer = await asyncio.to_thread(
                    TopicWriter, self.client, self.topics.metadata, f"{self.worker_id}-leader"
                )
            value = b""
            if metadata is not None:
                metadata.version = version
                value = metadata.SerializeToString()
            props = {"version": str(version), "epoch": str(epoch)}
            await self._writer.write(fqfn, value, props)
            record = MetadataRecord(fqfn, metadata, version, epoch)
            if self.registry.apply(record):
                for listener in self._listeners:
                    listener([fqfn])
            self._since_snapshot += 1
            if self._since_snapshot >= self.snapshot_every:
                await self._write_snapshot_locked(epoch)
            return version

    async def propose_mesh(
        self, key: str, change: MeshChange | None, expected_version: int | None, epoch: int
    ) -> MeshRecord:
        """Record a mesh change (``None`` deletes the mesh) as one record; only the leader calls this.

        Raises :class:`~engine.cluster.registry.StaleVersion` or
        :class:`~engine.mesh.versions.MemberConflict`; returns the record written.
        """
        async with self._lock:
            version = self.registry.next_version(key, expected_version)
            record = settle_change(self.registry, key, change, int(time.time() * 1000))
            record.version = version
            if self._writer is None:
                self._writer = await asyncio.to_thread(
                    TopicWriter, self.client, self.topics.metadata, f"{self.worker_id}-leader"
                )
            props = {"version": str(version), "epoch": str(epoch), "kind": "mesh"}
            await self._writer.write(key, record.encode(), props)
            if self.registry.apply(MetadataRecord(key, None, version, epoch, mesh=record)):
                for listener in self._listeners:
                    listener([key])
            self._since_snapshot += 1
            if self._since_snapshot >= self.snapshot_every:
                await self._write_snapshot_locked(epoch)
            return record

    async def write_snapshot(self, epoch: int) -> None:
        """Write a snapshot of the registry now (leader only)."""
        async with self._lock:
            await self._write_snapshot_locked(epoch)

    async def _write_snapshot_locked(self, epoch: int) -> None:
        # The snapshot covers what this worker has applied in topic order (its tailer's
        # position); its own newer writes ride along and are ignored again on replay.
        end = self._last_id
        if end == pulsar.MessageId.earliest:
            return
        functions, tombstones = self.registry.snapshot_items()
        blob = encode_snapshot(functions, tombstones, self.registry.mesh_items())
        if self._snap_writer is None:
            self._snap_writer = await asyncio.to_thread(
                TopicWriter, self.client, self.topics.metadata_snapshots, f"{self.worker_id}-snap"
            )
        snapshot_id = f"{self.worker_id}-{time.time_ns()}"
        parts = [blob[i : i + _PART_BYTES] for i in range(0, len(blob), _PART_BYTES)]
        position = base64.b64encode(end.serialize()).decode()
        common = {
            "snapshot": snapshot_id,
            "parts": str(len(parts)),
            "position": position,
            "epoch": str(epoch),
        }
        header = await self._snap_writer.write(snapshot_id, b"", {**common, "part": "-1"})
        first = base64.b64encode(header.serialize()).decode()
        for index, part in enumerate(parts):
            await self._snap_writer.write(snapshot_id, part, {**common, "part": str(index), "first": first})
        self._since_snapshot = 0
