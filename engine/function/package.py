"""Unpack a function package (``.py``, ``.zip`` or ``.whl``) into an importable directory.

* A ``.py`` file is imported from its own directory.
* A ``.zip`` is extracted; code may sit at its top level, in ``src/``, or in
  ``<name>/src`` (Pulsar's layout). Dependencies come from a ``requirements.txt``
  and any wheels in a ``deps/`` directory next to it, installed with pip into the
  package's own directory (wheels in ``deps/`` are preferred to the index).
* A ``.whl`` is installed with pip, with its dependencies, into its own directory.

Extraction and installs are cached by the package's content hash under the data
directory, so restarts and parallel instances reuse them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from engine.function.errors import FunctionLoadError

__all__ = ["package_digest", "prepare_package"]


def package_digest(path: str) -> str:
    """SHA-256 of the file at ``path``, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pip_install(target: str, args: list[str], what: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        target,
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FunctionLoadError(f"installing {what} failed: " + " | ".join(tail))


def _code_roots(root: str) -> list[str]:
    """Directories of an extracted zip to put on sys.path, most specific first."""
    roots = []
    for name in sorted(os.listdir(root)):
        nested = os.path.join(root, name, "src")
        if os.path.isdir(nested):
            roots.append(nested)
    if os.path.isdir(os.path.join(root, "src")):
        roots.append(os.path.join(root, "src"))
    roots.append(root)
    return roots


def _find(root: str, filename: str) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        if filename in files:
            found.append(os.path.join(dirpath, filename))
    return found


def _prepare_zip(path: str, dest: str) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                target = os.path.realpath(os.path.join(dest, member))
                if not target.startswith(os.path.realpath(dest) + os.sep) and target != os.path.realpath(
                    dest
                ):
                    raise FunctionLoadError(
                        f"--py {path}: zip member {member!r} escapes the package directory"
                    )
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise FunctionLoadError(f"--py {path}: not a valid zip file ({exc})")
    deps_target = os.path.join(dest, ".deps")
    wheel_dirs = sorted(
        os.path.join(dirpath)
        for dirpath, _d, files in os.walk(dest)
        if os.path.basename(dirpath) == "deps" and any(f.endswith(".whl") for f in files)
    )
    find_links = [arg for d in wheel_dirs for arg in ("--find-links", d)]
    requirements = _find(dest, "requirements.txt")
    for req in requirements:
        _pip_install(deps_target, [*find_links, "-r", req], f"{os.path.relpath(req, dest)} of {path}")
    if not requirements:
        wheels = [os.path.join(d, f) for d in wheel_dirs for f in sorted(os.listdir(d)) if f.endswith(".whl")]
        if wheels:
            _pip_install(deps_target, [*find_links, *wheels], f"the wheels in deps/ of {path}")


def prepare_package(py: str, cache_dir: str) -> list[str]:
    """Make the code at ``py`` importable; returns the directories to add to ``sys.path``."""
    if not os.path.isfile(py):
        raise FunctionLoadError(f"--py {py}: no such file")
    py = os.path.abspath(py)
    if py.endswith(".py"):
        return [os.path.dirname(py)]
    if not (py.endswith(".zip") or py.endswith(".whl")):
        raise FunctionLoadError(f"--py {py}: expected a .py, .zip or .whl file")
    digest = package_digest(py)
    dest = os.path.join(cache_dir, digest[:32])
    marker = os.path.join(dest, ".ready")
    if not os.path.exists(marker):
        os.makedirs(cache_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".staging-", dir=cache_dir)
        try:
            if py.endswith(".zip"):
                _prepare_zip(py, staging)
            else:
                _pip_install(staging, [py], py)
            with open(os.path.join(staging, ".ready"), "w") as fh:
                fh.write(py)
            try:
                os.rename(staging, dest)
            except OSError:  # another instance won the race; use its copy
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    if py.endswith(".whl"):
        return [dest]
    roots = _code_roots(dest)
    if os.path.isdir(os.path.join(dest, ".deps")):
        roots.append(os.path.join(dest, ".deps"))
    return roots
