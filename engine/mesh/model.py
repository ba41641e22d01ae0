"""What a mesh is once read: its identity, its members (functions, sources, sinks) and their configs.

Both forms (PIP-66 YAML and the ``FunctionMesh`` resource) are read into these types by
:mod:`engine.mesh.forms`; member configs are kept in Apache's camelCase form
(FunctionConfig, SourceConfig, SinkConfig) so that the existing parsing and validation
of :mod:`engine.config` and :mod:`engine.io` apply to them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from engine.config.errors import ConfigError, ConfigProblem

__all__ = ["MemberKind", "MemberSpec", "MeshError", "MeshSpec"]


class MemberKind(str, Enum):
    """What a member of a mesh is."""

    FUNCTION = "function"
    SOURCE = "source"
    SINK = "sink"


class MeshError(ConfigError):
    """A mesh that cannot be stored: each problem names the member and its field."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        self.args = (f"invalid mesh ({len(self.problems)} {noun}):\n{lines}",)

    @classmethod
    def of(cls, where: str, value: Any, expected: str) -> MeshError:
        """One problem at ``where``."""
        return cls([ConfigProblem(where, value, expected)])


@dataclass(frozen=True)
class MemberSpec:
    """One member as written in the mesh, in Apache's config form.

    ``config`` is a FunctionConfig (functions), SourceConfig (sources) or SinkConfig
    (sinks) mapping with ``tenant``, ``namespace`` and ``name`` filled in; ``package``
    is the code it names (``py``, ``python.py`` or ``python.pyLocation``), if any;
    ``kubernetes`` holds the fields that only a Kubernetes deployment uses (pod,
    image, volumes, resources as requests/limits, ...), kept for the manifests.
    """

    kind: MemberKind
    name: str
    config: dict[str, Any]
    package: str | None = None
    kubernetes: dict[str, Any] = field(default_factory=dict)
    max_replicas: int | None = None

    @property
    def fqfn(self) -> str:
        """``tenant/namespace/name`` of the member."""
        return f"{self.config['tenant']}/{self.config['namespace']}/{self.name}"


@dataclass(frozen=True)
class MeshSpec:
    """A mesh: ``tenant/namespace/name`` and its members, in the order written."""

    tenant: str
    namespace: str
    name: str
    form: str
    members: tuple[MemberSpec, ...]
    #: Topics that something outside the mesh is declared to produce (no warning for them).
    external_inputs: tuple[str, ...] = ()
    #: The document as given (what ``get`` answers and the manifests start from).
    document: dict[str, Any] = field(default_factory=dict)
    #: Names of members that run fused in one instance (``fuse: true``), in chain order.
    fused: tuple[str, ...] = ()
    #: ``fuse: true``: the chain also takes in the source feeding it and the sink it feeds.
    fuse_ends: bool = False

    @property
    def fqmn(self) -> str:
        """``tenant/namespace/name`` of the mesh."""
        return f"{self.tenant}/{self.namespace}/{self.name}"

    def member(self, name: str) -> MemberSpec | None:
        """The member called ``name``, if any."""
        return next((m for m in self.members if m.name == name), None)
