"""What a package path stored in a function's metadata may be."""

from __future__ import annotations

import re

__all__ = ["STORED_PACKAGE_RULE", "is_stored_package_path"]

# magnetar-package://<sha256 hex>@<urlsafe base64 of the first part's message id>
_STORED = re.compile(r"^magnetar-package://[0-9a-f]{64}@[A-Za-z0-9_\-]+={0,2}$")
STORED_PACKAGE_RULE = "expected the magnetar-package:// path of a stored package"


def is_stored_package_path(path: object) -> bool:
    """True when ``path`` has the form of a package stored through the packages topic."""
    return isinstance(path, str) and bool(_STORED.match(path))
