"""The assignment table and the records of the assignments topic.

Keys: ``tenant/namespace/name:instanceId`` for assignments (value: ``Assignment``
bytes, empty to remove), ``__leader__`` and ``__members__`` for the leader's view of
the cluster (JSON). Every record carries the writer's leader epoch; records of an
older epoch than one already applied are ignored, so a deposed leader's late writes
change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.proto import Function_pb2 as pb

__all__ = ["LEADER_KEY", "MEMBERS_KEY", "AssignmentRecord", "AssignmentTable"]

LEADER_KEY = "__leader__"
MEMBERS_KEY = "__members__"


@dataclass(frozen=True)
class AssignmentRecord:
    """One record of the assignments topic."""

    key: str
    value: bytes
    epoch: int


@dataclass
class AssignmentTable:
    """Current assignments, leader and membership, built from the assignments topic."""

    assignments: dict[str, pb.Assignment] = field(default_factory=dict)
    leader: dict[str, Any] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    max_epoch: int = 0

    def apply(self, record: AssignmentRecord) -> bool:
        """Apply ``record`` unless it comes from an older epoch; returns whether it was applied."""
        if record.epoch < self.max_epoch:
            return False
        # Decode before changing anything: a record that cannot be decoded changes nothing.
        if record.key in (LEADER_KEY, MEMBERS_KEY):
            value: Any = orjson.loads(record.value)
        elif record.value:
            value = pb.Assignment.FromString(record.value)
        self.max_epoch = record.epoch
        if record.key == LEADER_KEY:
            self.leader = value
        elif record.key == MEMBERS_KEY:
            self.members = value
        elif not record.value:
            self.assignments.pop(record.key, None)
        else:
            self.assignments[record.key] = value
        return True

    def for_worker(self, worker_id: str) -> dict[str, pb.Assignment]:
        """The assignments of one worker."""
        return {key: a for key, a in self.assignments.items() if a.workerId == worker_id}
