"""Package names as Pulsar's package management writes them: ``type://tenant/namespace/name@version``."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PACKAGE_TYPES", "PackageName", "parse_package_name"]

#: The package types Pulsar's package management knows.
PACKAGE_TYPES = ("function", "sink", "source")
_PART = re.compile(r"^[A-Za-z0-9_.=\-]+$")


@dataclass(frozen=True)
class PackageName:
    """One package (``version`` ``None`` when the name leaves it out)."""

    type: str
    tenant: str
    namespace: str
    name: str
    version: str | None = None

    @property
    def base(self) -> str:
        """``type://tenant/namespace/name``."""
        return f"{self.type}://{self.tenant}/{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return self.base if self.version is None else f"{self.base}@{self.version}"


def parse_package_name(text: str, need_version: bool = True) -> PackageName:
    """Parse ``type://tenant/namespace/name[@version]``; ``ValueError`` says what is wrong."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in PACKAGE_TYPES:
        raise ValueError(
            f"package name {text!r}: expected type://tenant/namespace/name@version "
            f"with type one of {', '.join(PACKAGE_TYPES)}"
        )
    path, at, version = rest.partition("@")
    parts = path.split("/")
    if len(parts) != 3 or not all(_PART.match(p) for p in parts):
        raise ValueError(f"package name {text!r}: expected tenant/namespace/name after {scheme}://")
    if at and not _PART.match(version):
        raise ValueError(f"package name {text!r}: invalid version {version!r}")
    if need_version and not at:
        raise ValueError(f"package name {text!r}: a version is required (name@version)")
    return PackageName(scheme, parts[0], parts[1], parts[2], version if at else None)
