"""A mesh as one metadata record: member versions, ownership, update diffs, deletes and snapshots."""

from __future__ import annotations

import pytest

from engine.cluster.registry import (
    FunctionRegistry,
    MetadataRecord,
    OwnedByMesh,
    StaleVersion,
    decode_snapshot,
    encode_snapshot,
)
from engine.mesh.record import MemberRecord, MeshChange, MeshRecord, mesh_key
from engine.mesh.versions import MemberConflict, settle_change
from engine.proto import Function_pb2 as pb

KEY = mesh_key("t/n/m")


def member(name: str, cls: str = "mod.F", kind: str = "function") -> MemberRecord:
    details = pb.FunctionDetails(tenant="t", namespace="n", name=name, className=cls)
    return MemberRecord(name, kind, pb.FunctionMetaData(functionDetails=details))


def write(reg: FunctionRegistry, change: MeshChange | None) -> MeshRecord:
    version = reg.next_version(KEY, None)
    record = settle_change(reg, KEY, change, 1000)
    record.version = version
    # What the topic carries is what every worker applies.
    decoded = MeshRecord.decode(record.encode())
    assert reg.apply(MetadataRecord(KEY, None, version, 1, mesh=decoded))
    return decoded


def test_create_update_delete_as_one_record() -> None:
    reg = FunctionRegistry()
    created = write(reg, MeshChange("t/n/m", {"doc": 1}, [member("a"), member("b"), member("c")]))
    assert created.diff["added"] == ["a", "b", "c"]
    assert reg.meshes("t", "n") == ["m"] and reg.list("t", "n") == ["a", "b", "c"]
    assert reg.owner("t/n/a") == "t/n/m" and reg.current_version("t/n/a") == 0
    untouched = reg.get("t/n/a")

    updated = write(reg, MeshChange("t/n/m", {"doc": 2}, [member("a"), member("b", "mod.G"), member("d")]))
    assert updated.diff == {"added": ["d"], "changed": ["b"], "removed": ["c"], "unchanged": ["a"]}
    assert reg.get("t/n/a") is untouched  # the very same metadata: nothing restarts it
    b = reg.get("t/n/b")
    assert b is not None and reg.current_version("t/n/b") == 1 and b.functionDetails.className == "mod.G"
    assert reg.get("t/n/c") is None and reg.current_version("t/n/c") == 1  # a tombstone
    assert reg.owner("t/n/c") is None
    mesh = reg.mesh(KEY)
    assert mesh is not None and mesh.document == {"doc": 2} and reg.current_version(KEY) == 1

    deleted = write(reg, None)
    assert sorted(deleted.diff["removed"]) == ["a", "b", "d"]
    assert reg.list("t", "n") == [] and reg.meshes("t", "n") == [] and reg.mesh(KEY) is None
    assert reg.current_version(KEY) == 2  # a re-created mesh continues after its tombstone


def test_a_member_cannot_be_changed_on_its_own() -> None:
    reg = FunctionRegistry()
    write(reg, MeshChange("t/n/m", {}, [member("a")]))
    with pytest.raises(OwnedByMesh, match="member of mesh t/n/m") as err:
        reg.next_version("t/n/a", 0)
    assert isinstance(err.value, StaleVersion)  # answered 409 as every conflict


def test_member_names_taken_elsewhere_are_conflicts() -> None:
    reg = FunctionRegistry()
    reg.apply(MetadataRecord("t/n/alone", member("alone").metadata, 0, 1))
    with pytest.raises(MemberConflict, match="already exists on its own"):
        settle_change(reg, KEY, MeshChange("t/n/m", {}, [member("alone")]), 0)
    write(reg, MeshChange("t/n/m", {}, [member("a")]))
    with pytest.raises(MemberConflict, match="already a member of mesh t/n/m"):
        settle_change(reg, mesh_key("t/n/other"), MeshChange("t/n/other", {}, [member("a")]), 0)


def test_replayed_and_late_records_change_nothing() -> None:
    reg = FunctionRegistry()
    first = write(reg, MeshChange("t/n/m", {}, [member("a")]))
    assert not reg.apply(MetadataRecord(KEY, None, first.version, 1, mesh=first))


def test_snapshot_keeps_meshes_and_ownership() -> None:
    reg = FunctionRegistry()
    write(reg, MeshChange("t/n/m", {"x": 1}, [member("a"), member("b")]))
    functions, tombstones = reg.snapshot_items()
    f2, t2, meshes = decode_snapshot(encode_snapshot(functions, tombstones, reg.mesh_items()))
    fresh = FunctionRegistry()
    fresh.load_snapshot(f2, t2, 1, meshes)
    assert fresh.meshes("t", "n") == ["m"] and fresh.owner("t/n/b") == "t/n/m"
    mesh = fresh.mesh(KEY)
    assert mesh is not None and fresh.current_version(KEY) == 0 and mesh.document == {"x": 1}
    # A snapshot written before meshes existed still reads.
    old = encode_snapshot(functions, tombstones)[:-4]
    assert decode_snapshot(old)[2] == {}


def test_the_same_package_uploaded_again_is_no_change() -> None:
    reg = FunctionRegistry()

    def with_package(position: str) -> MemberRecord:
        m = member("a")
        m.metadata.packageLocation.packagePath = f"magnetar-package://abc123@{position}"
        m.metadata.packageLocation.originalFileName = "f.py"
        return m

    write(reg, MeshChange("t/n/m", {}, [with_package("AAA")]))
    again = write(reg, MeshChange("t/n/m", {}, [with_package("BBB")]))
    assert again.diff["unchanged"] == ["a"]
    other = member("a")
    other.metadata.packageLocation.packagePath = "magnetar-package://def456@CCC"
    other.metadata.packageLocation.originalFileName = "f.py"
    assert write(reg, MeshChange("t/n/m", {}, [other])).diff["changed"] == ["a"]
