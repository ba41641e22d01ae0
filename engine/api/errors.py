"""HTTP errors with a JSON ``{"reason": ...}`` body, as Pulsar's admin API answers."""

from __future__ import annotations

from aiohttp import web

__all__ = ["http_error"]


def http_error(status: int, reason: str) -> web.HTTPException:
    """An aiohttp exception carrying ``{"reason": reason}``."""
    import orjson

    cls = web.HTTPException
    for candidate in (
        web.HTTPBadRequest,
        web.HTTPUnauthorized,
        web.HTTPForbidden,
        web.HTTPNotFound,
        web.HTTPConflict,
        web.HTTPServiceUnavailable,
        web.HTTPRequestTimeout,
        web.HTTPInternalServerError,
    ):
        if candidate.status_code == status:
            cls = candidate
            break
    exc = cls(text=orjson.dumps({"reason": reason}).decode(), content_type="application/json")
    return exc
