"""The in-memory function registry and the rules for applying metadata records.

A record is ``(fqfn, FunctionMetaData or None for a delete, version, epoch)``, or for a
mesh ``(mesh key, MeshRecord, version, epoch)``: one record that sets or removes every
member of the mesh at once (:mod:`engine.mesh.record`); a member belongs to its mesh
and cannot be changed on its own (:class:`OwnedByMesh`). Versions
only grow per function, across deletes too (a re-created function continues after its
tombstone), so a duplicate or late copy of any older record is recognised and
ignored. Records written by a leader of an older epoch than one already seen are
ignored as well: a deposed leader cannot change anything once its successor wrote.
"""

from __future__ import annotations

import builtins
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from engine.mesh.record import MESH_KEY_PREFIX, MeshRecord, is_mesh_key, mesh_name_of
from engine.proto import Function_pb2 as pb

__all__ = [
    "FunctionRegistry",
    "MetadataRecord",
    "OwnedByMesh",
    "StaleVersion",
    "decode_snapshot",
    "encode_snapshot",
]


class StaleVersion(Exception):
    """A change was based on a version that is no longer current (HTTP 409)."""


class OwnedByMesh(StaleVersion):
    """A change to a mesh's member made on its own, not through its mesh (HTTP 409, as a conflict)."""


@dataclass(frozen=True)
class MetadataRecord:
    """One change to one function, as written to the metadata topic."""

    fqfn: str
    metadata: pb.FunctionMetaData | None
    version: int
    epoch: int
    #: The mesh record, when ``fqfn`` is a mesh key.
    mesh: MeshRecord | None = None


class FunctionRegistry:
    """Every function's newest FunctionMetaData, plus tombstone versions of deleted ones."""

    def __init__(self) -> None:
        self._functions: dict[str, pb.FunctionMetaData] = {}
        self._tombstones: dict[str, int] = {}
        self._meshes: dict[str, MeshRecord] = {}
        #: member fqfn -> the key of the mesh owning it.
        self._owners: dict[str, str] = {}
        self.max_epoch = 0
        self.records_applied = 0

    def __len__(self) -> int:
        return len(self._functions)

    def get(self, fqfn: str) -> pb.FunctionMetaData | None:
        """The newest metadata of ``fqfn``, or ``None``."""
        return self._functions.get(fqfn)

    def items(self) -> Iterator[tuple[str, pb.FunctionMetaData]]:
        """``(fqfn, metadata)`` of every live function."""
        return iter(list(self._functions.items()))

    def list(self, tenant: str, namespace: str) -> list[str]:
        """Names of the functions in ``tenant/namespace``."""
        prefix = f"{tenant}/{namespace}/"
        return sorted(k[len(prefix) :] for k in self._functions if k.startswith(prefix))

    def current_version(self, fqfn: str) -> int:
        """The version of ``fqfn`` or of a mesh key (live or deleted); -1 if never seen."""
        md = self._functions.get(fqfn)
        if md is not None:
            return int(md.version)
        mesh = self._meshes.get(fqfn)
        if mesh is not None:
            return mesh.version
        return self._tombstones.get(fqfn, -1)

    # -- meshes ------------------------------------------------------------------------------
    def mesh(self, key: str) -> MeshRecord | None:
        """The live mesh recorded under ``key``, or ``None``."""
        return self._meshes.get(key)

    def meshes(self, tenant: str, namespace: str) -> builtins.list[str]:
        """Names of the meshes in ``tenant/namespace``."""
        prefix = f"{tenant}/{namespace}/"
        names = (mesh_name_of(k) for k in self._meshes)
        return sorted(n[len(prefix) :] for n in names if n.startswith(prefix))

    def owner(self, fqfn: str) -> str | None:
        """``tenant/namespace/name`` of the mesh owning function ``fqfn``, if one does."""
        key = self._owners.get(fqfn)
        return mesh_name_of(key) if key is not None else None

    def mesh_items(self) -> dict[str, MeshRecord]:
        """A copy of the live meshes by key."""
        return dict(self._meshes)

    def _apply_mesh(self, key: str, mesh: MeshRecord, version: int) -> None:
        for fqfn, tombstone in mesh.removed.items():
            if tombstone > self.current_version(fqfn):
                self._functions.pop(fqfn, None)
                self._tombstones[fqfn] = tombstone
            if self._owners.get(fqfn) == key:
                del self._owners[fqfn]
        for member in mesh.members:
            fqfn = member.fqfn
            if int(member.metadata.version) > self.current_version(fqfn):
                self._functions[fqfn] = member.metadata
                self._tombstones.pop(fqfn, None)
            self._owners[fqfn] = key
        if mesh.deleted:
            self._meshes.pop(key, None)
            self._tombstones[key] = version
        else:
            mesh.version = version
            self._meshes[key] = mesh
            self._tombstones.pop(key, None)

    def apply(self, record: MetadataRecord) -> bool:
        """Apply ``record`` if it is new; returns whether anything changed."""
        if record.epoch < self.max_epoch:
            return False
        self.max_epoch = max(self.max_epoch, record.epoch)
        if record.version <= self.current_version(record.fqfn):
            return False
        if is_mesh_key(record.fqfn):
            if record.mesh is None:
                return False
            self._apply_mesh(record.fqfn, record.mesh, record.version)
        elif record.metadata is None:
            self._functions.pop(record.fqfn, None)
            self._tombstones[record.fqfn] = record.version
        else:
            self._functions[record.fqfn] = record.metadata
            self._tombstones.pop(record.fqfn, None)
        self.records_applied += 1
        return True

    def next_version(self, fqfn: str, expected: int | None) -> int:
        """The version a change to ``fqfn`` gets; raises :class:`StaleVersion` if ``expected`` is old."""
        current = self.current_version(fqfn)
        owner = self.owner(fqfn)
        if owner is not None:
            raise OwnedByMesh(
                f"{fqfn} is a member of mesh {owner}: change or delete it through the mesh "
                f"(magnetar mesh update|delete), not on its own"
            )
        if expected is not None and expected != current:
            raise StaleVersion(
                f"{fqfn}: the change is based on version {expected} but version {current} is current; "
                "read the function again and retry"
            )
        return current + 1

    def snapshot_items(self) -> tuple[dict[str, pb.FunctionMetaData], dict[str, int]]:
        """Copies of the live map and the tombstones."""
        return dict(self._functions), dict(self._tombstones)

    def load_snapshot(
        self,
        functions: dict[str, pb.FunctionMetaData],
        tombstones: dict[str, int],
        epoch: int,
        meshes: dict[str, MeshRecord] | None = None,
    ) -> None:
        """Replace the contents with a snapshot."""
        self._functions = dict(functions)
        self._tombstones = dict(tombstones)
        self._meshes = dict(meshes or {})
        self._owners = {m.fqfn: key for key, mesh in self._meshes.items() for m in mesh.members}
        self.max_epoch = max(self.max_epoch, epoch)


_LEN = struct.Struct(">I")


def encode_snapshot(
    functions: dict[str, pb.FunctionMetaData],
    tombstones: dict[str, int],
    meshes: dict[str, MeshRecord] | None = None,
) -> bytes:
    """A compact binary form: length-prefixed metadata records, tombstones, then mesh records."""
    out = bytearray()
    out += _LEN.pack(len(functions))
    for md in functions.values():
        data = md.SerializeToString()
        out += _LEN.pack(len(data))
        out += data
    out += _LEN.pack(len(tombstones))
    for fqfn, version in tombstones.items():
        key = fqfn.encode()
        out += _LEN.pack(len(key)) + key + struct.pack(">Q", version)
    out += _LEN.pack(len(meshes or {}))
    for mesh in (meshes or {}).values():
        data = mesh.encode()
        out += _LEN.pack(len(data)) + data
    return bytes(out)


def _fqfn(md: pb.FunctionMetaData) -> str:
    d = md.functionDetails
    return f"{d.tenant}/{d.namespace}/{d.name}"


def decode_snapshot(
    data: bytes,
) -> tuple[dict[str, pb.FunctionMetaData], dict[str, int], dict[str, MeshRecord]]:
    """Inverse of :func:`encode_snapshot` (a snapshot written before meshes existed has none)."""
    view = memoryview(data)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        chunk = view[pos : pos + n]
        pos += n
        return chunk

    functions: dict[str, pb.FunctionMetaData] = {}
    (count,) = _LEN.unpack(take(4))
    for _ in range(count):
        (size,) = _LEN.unpack(take(4))
        md = pb.FunctionMetaData.FromString(bytes(take(size)))
        functions[_fqfn(md)] = md
    tombstones: dict[str, int] = {}
    (count,) = _LEN.unpack(take(4))
    for _ in range(count):
        (size,) = _LEN.unpack(take(4))
        key = bytes(take(size)).decode()
        (version,) = struct.unpack(">Q", take(8))
        tombstones[key] = version
    meshes: dict[str, MeshRecord] = {}
    if pos < len(data):
        (count,) = _LEN.unpack(take(4))
        for _ in range(count):
            (size,) = _LEN.unpack(take(4))
            mesh = MeshRecord.decode(bytes(take(size)))
            meshes[MESH_KEY_PREFIX + mesh.fqmn] = mesh
    return functions, tombstones, meshes
