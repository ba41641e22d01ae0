"""Package names and bounded http(s) package downloads."""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.packages import PackageName, fetch_url, parse_package_name
from engine.packages.fetch import FetchError


def test_package_names() -> None:
    name = parse_package_name("function://public/default/exclaim@v1.2")
    assert name == PackageName("function", "public", "default", "exclaim", "v1.2")
    assert str(name) == "function://public/default/exclaim@v1.2"
    assert parse_package_name("sink://t/ns/s", need_version=False).base == "sink://t/ns/s"
    for bad, reason in (
        ("jar://t/ns/n@1", "type one of function, sink, source"),
        ("function://t/n@1", "expected tenant/namespace/name"),
        ("function://t/ns/n", "a version is required"),
        ("source://t/ns/n@bad version", "invalid version"),
    ):
        with pytest.raises(ValueError, match=reason):
            parse_package_name(bad)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "small.py").write_bytes(b"x = 1\n")
    (tmp_path / "big.zip").write_bytes(b"z" * 5000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_fetch_url_bounds_size_and_names_errors(served: str) -> None:
    assert asyncio.run(fetch_url(f"{served}/small.py")) == (b"x = 1\n", "small.py")
    with pytest.raises(FetchError, match="5000 bytes, over the 1000 limit"):
        asyncio.run(fetch_url(f"{served}/big.zip", max_bytes=1000))
    with pytest.raises(FetchError, match="the server answered 404"):
        asyncio.run(fetch_url(f"{served}/absent.py"))
    with pytest.raises(FetchError, match="expected an http:// or https:// URL"):
        asyncio.run(fetch_url("ftp://example.invalid/x.py"))
