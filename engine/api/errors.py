"""HTTP errors with a JSON ``{"reason": ...}`` body, as Pulsar's admin API answers."""

from __future__ import annotations

from functools import cache

import orjson
from aiohttp import web

__all__ = ["http_error"]


@cache
def _error_class(status: int) -> type[web.HTTPException]:
    # aiohttp's base HTTPException has status -1; a class per status gives a real status line.
    base: type[web.HTTPException] = web.HTTPClientError if status < 500 else web.HTTPServerError
    return type(f"HTTPError{status}", (base,), {"status_code": status})


def http_error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.HTTPException:
    """An aiohttp exception carrying ``{"reason": reason}`` with status ``status`` (and ``headers``)."""
    return _error_class(status)(
        text=orjson.dumps({"reason": reason}).decode(), content_type="application/json", headers=headers
    )
