"""The cluster's internal topics, in the functions namespace (``public/functions``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClusterTopics"]


@dataclass(frozen=True)
class ClusterTopics:
    """Names of the topics workers coordinate through."""

    namespace: str = "public/functions"

    def _topic(self, name: str) -> str:
        return f"persistent://{self.namespace}/{name}"

    @property
    def metadata(self) -> str:
        """Versioned FunctionMetaData records, keyed by fully-qualified function name."""
        return self._topic("metadata")

    @property
    def metadata_snapshots(self) -> str:
        """Periodic snapshots of the whole metadata map, for fast start-up."""
        return self._topic("metadata-snapshots")

    @property
    def coordinate(self) -> str:
        """Heartbeats on the Failover subscription that elects the leader."""
        return self._topic("coordinate")

    @property
    def assignments(self) -> str:
        """Instance assignments, the leader record and the membership record."""
        return self._topic("assignments")

    @property
    def packages(self) -> str:
        """Function packages, by content hash."""
        return self._topic("packages")
