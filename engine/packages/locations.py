"""Where a submitted function's code goes: package bytes, or a package URL, to a stored location.

A submission carries the code itself or a URL: ``file://`` (a file on the worker),
``http(s)://`` (downloaded by the worker, bounded in size and time) or a
``function://``/``sink://``/``source://`` package of the package registry.
"""

from __future__ import annotations

import asyncio
import os

from engine.api.errors import http_error
from engine.packages.fetch import FetchError, fetch_url
from engine.packages.names import parse_package_name
from engine.packages.registry import RegistryError
from engine.packages.routes import registry_of
from engine.proto import Function_pb2 as pb
from engine.worker.worker import Worker

__all__ = ["store_package"]


async def store_package(
    worker: Worker, data: bytes | None, filename: str | None, url: str | None
) -> pb.PackageLocationMetaData | None:
    """The stored location of the submitted code; ``None`` when neither code nor URL was given.

    Raises a 400 naming the ``url`` or ``data`` part when the code cannot be had.
    """
    if data is None and url:
        if url.startswith("file://"):
            path = url[len("file://") :]
            if not os.path.isfile(path):
                raise http_error(400, f"url: {url!r}: no such file on the worker")
            with open(path, "rb") as fh:
                data = fh.read()
            filename = os.path.basename(path)
        elif url.startswith(("http://", "https://")):
            try:
                data, filename = await fetch_url(url)
            except FetchError as exc:
                raise http_error(400, str(exc))
        elif url.startswith(("function://", "sink://", "source://")):
            return await _registered_package(worker, url)
        else:
            raise http_error(
                400,
                f"url: {url!r}: expected a file://, http(s)://, function://, sink:// or source:// URL",
            )
    if data is None:
        return None
    assert filename is not None
    if not filename.endswith((".py", ".zip", ".whl")):
        raise http_error(400, f"data: {filename!r}: expected a .py, .zip or .whl package")
    path = await asyncio.to_thread(worker.packages.put, data, filename)
    return pb.PackageLocationMetaData(packagePath=path, originalFileName=filename)


async def _registered_package(worker: Worker, url: str) -> pb.PackageLocationMetaData:
    """The location of a package from the package registry (``function://t/ns/name@version``)."""
    try:
        name = parse_package_name(url)
        record = await asyncio.to_thread(registry_of(worker).get, name)
    except ValueError as exc:
        raise http_error(400, f"url: {exc}")
    except RegistryError as exc:
        raise http_error(400 if exc.status == 404 else exc.status, f"url: {exc}")
    if not record.filename.endswith((".py", ".zip", ".whl")):
        raise http_error(400, f"url: {url!r}: the package {record.filename!r} is not a .py, .zip or .whl")
    return pb.PackageLocationMetaData(packagePath=record.location, originalFileName=record.filename)
