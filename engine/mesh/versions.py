"""What a mesh change does to its members: which are added, changed, removed or left alone.

The leader settles a change against its registry just before writing it: an unchanged
member (same details, same package) keeps its metadata and version, so no worker
restarts it; a changed or added member gets the next version of its name; a removed
member gets a tombstone version. A member's name must not be taken by a function of
its own or by another mesh.
"""

from __future__ import annotations

from typing import Protocol

from engine.mesh.record import MemberRecord, MeshChange, MeshRecord, mesh_name_of
from engine.proto import Function_pb2 as pb

__all__ = ["MemberConflict", "RegistryView", "package_identity", "settle_change"]

#: How the package store's paths begin (``engine.cluster.packages.SCHEME``), kept here so that
#: settling needs no broker client.
STORED_PACKAGE_SCHEME = "magnetar-package://"


class MemberConflict(Exception):
    """A member's name is taken by a function outside the mesh, or by another mesh (HTTP 409)."""


class RegistryView(Protocol):
    """What settling needs of the function registry."""

    def get(self, fqfn: str) -> pb.FunctionMetaData | None: ...

    def current_version(self, fqfn: str) -> int: ...

    def owner(self, fqfn: str) -> str | None: ...

    def mesh(self, key: str) -> MeshRecord | None: ...


def package_identity(location: pb.PackageLocationMetaData) -> tuple[str, str]:
    """What makes two package locations the same code: a stored package's content digest
    (its path also names where it was written, which differs between uploads), else the path."""
    path = location.packagePath
    if path.startswith(STORED_PACKAGE_SCHEME):
        path = path.split("@", 1)[0]
    return path, location.originalFileName


def _same(a: pb.FunctionMetaData, b: pb.FunctionMetaData) -> bool:
    return a.functionDetails == b.functionDetails and package_identity(a.packageLocation) == package_identity(
        b.packageLocation
    )


def settle_change(registry: RegistryView, key: str, change: MeshChange | None, now_ms: int) -> MeshRecord:
    """The record that applies ``change`` (``None``: delete the mesh) to the mesh under ``key``.

    Raises
    ------
    MemberConflict
        When a member's name belongs to a function outside this mesh or to another mesh.
    """
    fqmn = mesh_name_of(key)
    old = registry.mesh(key)
    old_members = {m.name: m for m in old.members} if old is not None else {}
    if change is None:
        removed = {m.fqfn: registry.current_version(m.fqfn) + 1 for m in old_members.values()}
        return MeshRecord(
            fqmn,
            old.document if old else {},
            [],
            removed,
            create_time=old.create_time if old else now_ms,
            deleted=True,
            diff={"removed": sorted(old_members)},
        )
    diff: dict[str, list[str]] = {"added": [], "changed": [], "removed": [], "unchanged": []}
    members: list[MemberRecord] = []
    for new in change.members:
        fqfn = new.fqfn
        owner = registry.owner(fqfn)
        if owner is not None and owner != fqmn:
            raise MemberConflict(f"{new.kind} {new.name}: {fqfn} is already a member of mesh {owner}")
        if owner is None and registry.get(fqfn) is not None:
            raise MemberConflict(
                f"{new.kind} {new.name}: {fqfn} already exists on its own; delete it or rename the member"
            )
        before = old_members.get(new.name)
        if before is not None and before.kind == new.kind and _same(before.metadata, new.metadata):
            members.append(before)
            diff["unchanged"].append(new.name)
            continue
        md = pb.FunctionMetaData()
        md.CopyFrom(new.metadata)
        md.version = registry.current_version(fqfn) + 1
        if before is not None:
            md.createTime = before.metadata.createTime
            diff["changed"].append(new.name)
        else:
            md.createTime = md.createTime or now_ms
            diff["added"].append(new.name)
        members.append(MemberRecord(new.name, new.kind, md))
    kept = {m.name for m in change.members}
    removed = {}
    for name, before in old_members.items():
        if name not in kept:
            removed[before.fqfn] = registry.current_version(before.fqfn) + 1
            diff["removed"].append(name)
    return MeshRecord(
        fqmn,
        change.document,
        members,
        removed,
        create_time=old.create_time if old else now_ms,
        warnings=change.warnings,
        diff=diff,
    )
