"""The validated settings of a source (a sink's are a FunctionSpec with inputs and no output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.config.function_config import ProducerConfig

__all__ = ["SourceSpec"]


@dataclass(frozen=True)
class SourceSpec:
    """A source: identity, destination topic, encoding, guarantee and its connector."""

    tenant: str
    namespace: str
    name: str
    destination_topic: str
    source_type: str | None
    class_name: str | None
    archive: str | None
    config: dict[str, Any]
    processing_guarantees: str = "ATLEAST_ONCE"
    parallelism: int = 1
    schema_type: str | None = None
    serde_class_name: str | None = None
    secrets: dict[str, Any] = field(default_factory=dict)
    log_topic: str | None = None
    producer: ProducerConfig = field(default_factory=ProducerConfig)
    #: Records read but not yet persisted, at most (the source is not read beyond).
    max_pending: int = 10_000

    @property
    def fqfn(self) -> str:
        """``tenant/namespace/name``."""
        return f"{self.tenant}/{self.namespace}/{self.name}"

    @property
    def output_serde_class_name(self) -> str | None:
        """The SerDe of the destination topic (for the Context)."""
        return self.serde_class_name
