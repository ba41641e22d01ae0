"""The one metadata record of a mesh: its document and every member's ``FunctionMetaData``.

A mesh is written to the metadata topic under :func:`mesh_key` (a key no function can
have: ``@`` is not allowed in names), as JSON with each member's metadata in base64.
The record carries the version each member gets, and for the members a change removes,
the version of their tombstone, so that every worker applying it (live or on replay)
reaches the same registry: one write creates, updates or deletes the whole mesh.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError

from engine.proto import Function_pb2 as pb

__all__ = [
    "MESH_KEY_PREFIX",
    "MemberRecord",
    "MeshChange",
    "MeshRecord",
    "is_mesh_key",
    "mesh_key",
    "mesh_name_of",
]

MESH_KEY_PREFIX = "@mesh:"


def mesh_key(fqmn: str) -> str:
    """The metadata key of mesh ``tenant/namespace/name``."""
    return MESH_KEY_PREFIX + fqmn


def is_mesh_key(key: str) -> bool:
    """True for a key written by :func:`mesh_key`."""
    return key.startswith(MESH_KEY_PREFIX)


def mesh_name_of(key: str) -> str:
    """``tenant/namespace/name`` of a mesh key."""
    return key.removeprefix(MESH_KEY_PREFIX)


@dataclass
class MemberRecord:
    """One member as stored: its kind and its metadata (with the member's version)."""

    name: str
    kind: str
    metadata: pb.FunctionMetaData

    @property
    def fqfn(self) -> str:
        """``tenant/namespace/name`` of the member."""
        d = self.metadata.functionDetails
        return f"{d.tenant}/{d.namespace}/{d.name}"


@dataclass
class MeshChange:
    """What a create or update asks for: the document and its members (versions not yet given)."""

    fqmn: str
    document: dict[str, Any]
    members: list[MemberRecord]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (forwarded to the leader)."""
        return {
            "fqmn": self.fqmn,
            "document": self.document,
            "warnings": self.warnings,
            "members": [_member_json(m) for m in self.members],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MeshChange:
        """Inverse of :meth:`to_json`; raises ``ValueError``/``KeyError``/``TypeError`` on a bad form."""
        return cls(
            str(data["fqmn"]),
            dict(data["document"]),
            [_member_of(m) for m in data["members"]],
            [str(w) for w in data.get("warnings", [])],
        )


@dataclass
class MeshRecord:
    """A mesh as recorded; ``deleted`` with no members is the record that removes it."""

    fqmn: str
    document: dict[str, Any]
    members: list[MemberRecord]
    #: ``fqfn -> tombstone version`` of the members this change removes.
    removed: dict[str, int] = field(default_factory=dict)
    version: int = 0
    create_time: int = 0
    deleted: bool = False
    warnings: list[str] = field(default_factory=list)
    #: ``added``, ``changed``, ``removed``, ``unchanged``: member names, as this change computed them.
    diff: dict[str, list[str]] = field(default_factory=dict)

    def member(self, name: str) -> MemberRecord | None:
        """The member called ``name``."""
        return next((m for m in self.members if m.name == name), None)

    def encode(self) -> bytes:
        """The bytes written to the metadata topic."""
        return orjson.dumps(
            {
                "fqmn": self.fqmn,
                "document": self.document,
                "members": [_member_json(m) for m in self.members],
                "removed": self.removed,
                "version": self.version,
                "createTime": self.create_time,
                "deleted": self.deleted,
                "warnings": self.warnings,
                "diff": self.diff,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> MeshRecord:
        """Inverse of :meth:`encode`; raises ``ValueError`` on bytes that are not a mesh record."""
        try:
            raw = orjson.loads(data)
            return cls(
                fqmn=str(raw["fqmn"]),
                document=dict(raw["document"]),
                members=[_member_of(m) for m in raw["members"]],
                removed={str(k): int(v) for k, v in raw.get("removed", {}).items()},
                version=int(raw.get("version", 0)),
                create_time=int(raw.get("createTime", 0)),
                deleted=bool(raw.get("deleted", False)),
                warnings=[str(w) for w in raw.get("warnings", [])],
                diff={str(k): [str(n) for n in v] for k, v in raw.get("diff", {}).items()},
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a mesh record: {exc}") from exc


def _member_json(m: MemberRecord) -> dict[str, Any]:
    return {
        "name": m.name,
        "kind": m.kind,
        "metadata": base64.b64encode(m.metadata.SerializeToString()).decode(),
    }


def _member_of(raw: dict[str, Any]) -> MemberRecord:
    try:
        md = pb.FunctionMetaData.FromString(base64.b64decode(raw["metadata"], validate=True))
    except (DecodeError, ValueError) as exc:
        raise ValueError(f"member {raw.get('name')!r}: metadata is not base64 of a FunctionMetaData") from exc
    return MemberRecord(str(raw["name"]), str(raw["kind"]), md)
