"""The worker cluster: metadata, leader election, scheduling and assignments."""

from engine.cluster.assignments import LEADER_KEY, MEMBERS_KEY, AssignmentRecord, AssignmentTable
from engine.cluster.registry import FunctionRegistry, MetadataRecord, StaleVersion
from engine.cluster.scheduler import LeastLoadedScheduler, Scheduler, instance_key, split_instance_key
from engine.cluster.topics import ClusterTopics

__all__ = [
    "LEADER_KEY",
    "MEMBERS_KEY",
    "AssignmentRecord",
    "AssignmentTable",
    "ClusterTopics",
    "FunctionRegistry",
    "LeastLoadedScheduler",
    "MetadataRecord",
    "Scheduler",
    "StaleVersion",
    "instance_key",
    "split_instance_key",
]
