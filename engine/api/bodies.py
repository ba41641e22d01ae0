"""Reading request bodies with a size limit and clear 4xx errors."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from engine.api.errors import http_error

__all__ = ["JSON_BODY_LIMIT", "read_json", "read_limited"]

#: The largest JSON body of a state, trigger or leader request (a message's size in Pulsar).
JSON_BODY_LIMIT = 5 * 1024 * 1024


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, or a 413 naming ``limit`` when it is larger."""
    if request.content_length is not None and request.content_length > limit:
        raise http_error(
            413, f"the request body has {request.content_length} bytes; at most {limit} are accepted"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise http_error(413, f"the request body is larger than the {limit} bytes accepted")
        chunks.append(chunk)


async def read_json(request: web.Request, what: str, limit: int = JSON_BODY_LIMIT) -> Any:
    """The body decoded as JSON; 400 naming ``what`` when it is not JSON, 413 when too large."""
    raw = await read_limited(request, limit)
    try:
        return orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise http_error(400, f"{what}: the body is not valid JSON ({exc.msg})")
