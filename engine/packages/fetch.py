"""Fetch a package from an ``http://`` or ``https://`` URL, bounded in size and time."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

import aiohttp

__all__ = ["FETCH_TIMEOUT_S", "MAX_PACKAGE_BYTES", "FetchError", "fetch_url"]

#: The largest package a worker downloads.
MAX_PACKAGE_BYTES = 256 * 1024 * 1024
#: Seconds a download may take in all.
FETCH_TIMEOUT_S = 60.0


class FetchError(Exception):
    """The package could not be fetched; the message names the URL and the cause."""


async def fetch_url(
    url: str, max_bytes: int = MAX_PACKAGE_BYTES, timeout: float = FETCH_TIMEOUT_S
) -> tuple[bytes, str]:
    """``(content, file name)`` of the package at ``url``.

    Raises
    ------
    FetchError
        The URL is not http(s), the server answered with an error, the body is larger
        than ``max_bytes``, or the download took longer than ``timeout`` seconds.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise FetchError(f"url: {url!r}: expected an http:// or https:// URL")
    filename = os.path.basename(unquote(parsed.path)) or "package"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url) as resp:
                if resp.status != 200:
                    raise FetchError(f"url: {url!r}: the server answered {resp.status}")
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise FetchError(f"url: {url!r}: {resp.content_length} bytes, over the {max_bytes} limit")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"url: {url!r}: more than the {max_bytes} byte limit")
                    chunks.append(chunk)
    except TimeoutError:
        raise FetchError(f"url: {url!r}: not downloaded within {timeout:.0f} s") from None
    except aiohttp.ClientError as exc:
        raise FetchError(f"url: {url!r}: {exc}") from None
    return b"".join(chunks), filename
