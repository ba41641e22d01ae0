"""Reading request bodies with a size limit and clear 4xx errors."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from engine.api.errors import http_error

__all__ = ["JSON_BODY_LIMIT", "read_form", "read_json", "read_limited", "read_parts"]

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


_MALFORMED = "the multipart/form-data body is malformed (expected a boundary and well-formed parts)"


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The form fields of a multipart or urlencoded body; 400 when the body cannot be parsed."""
    try:
        return await request.post()
    except (ValueError, AssertionError, LookupError, HttpProcessingError):
        raise http_error(400, _MALFORMED)


async def read_parts(request: web.Request) -> list[tuple[str, str | None, bytes]]:
    """``(name, filename, content)`` of every part of a multipart body; 400 when it cannot be parsed."""
    out: list[tuple[str, str | None, bytes]] = []
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                return out
            if isinstance(part, BodyPartReader):
                out.append((part.name or "", part.filename, bytes(await part.read())))
    except (ValueError, AssertionError, LookupError, HttpProcessingError):
        raise http_error(400, _MALFORMED)
