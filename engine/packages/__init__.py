"""Package management: versioned ``function://``/``sink://``/``source://`` packages and URLs."""

from engine.packages.fetch import MAX_PACKAGE_BYTES, fetch_url
from engine.packages.names import PACKAGE_TYPES, PackageName, parse_package_name
from engine.packages.registry import PackageRecord, PackageRegistry, RegistryError

__all__ = [
    "MAX_PACKAGE_BYTES",
    "PACKAGE_TYPES",
    "PackageName",
    "PackageRecord",
    "PackageRegistry",
    "RegistryError",
    "fetch_url",
    "parse_package_name",
]
