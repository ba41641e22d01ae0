"""Build tiny wheels and zip packages for tests, without network or build tools."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile


def make_wheel(out_dir: str, dist: str, version: str, files: dict[str, str]) -> str:
    """A pure-Python wheel holding ``files`` (path -> source); returns its path."""
    norm = dist.replace("-", "_")
    name = f"{norm}-{version}-py3-none-any.whl"
    path = os.path.join(out_dir, name)
    info = f"{norm}-{version}.dist-info"
    entries = dict(files)
    entries[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
    entries[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record_lines = []
    for rel, text in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record_lines.append(f"{rel},sha256={digest},{len(text.encode())}")
    record_lines.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = "\n".join(record_lines) + "\n"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in entries.items():
            zf.writestr(rel, text)
    return path


def make_zip(path: str, files: dict[str, bytes | str]) -> str:
    """A zip with ``files`` (archive path -> content)."""
    with zipfile.ZipFile(path, "w") as zf:
        for rel, content in files.items():
            zf.writestr(rel, content)
    return path
