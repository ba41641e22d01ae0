"""JSON ``{"reason"}`` answers for requests aiohttp rejects before any route or middleware runs.

A request line or header that breaks HTTP's rules (or the size limits) is answered by
aiohttp's protocol handler itself, as plain text with status 400. Here those answers are
JSON like every other error, and an over-long request line is 414 (URI Too Long) and an
over-long header 431, as HTTP names them.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

__all__ = ["JsonErrorRunner"]


def _status_and_reason(status: int, exc: BaseException | None) -> tuple[int, str]:
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        text = bytes(line).decode("latin-1", "replace") if isinstance(line, (bytes, bytearray)) else str(line)
        if text.startswith(("/", "http://", "https://")):
            return 414, "the request URI is longer than the worker accepts"
        return 431, "a request header is longer than the worker accepts"
    if status >= 500:
        return status, "internal error; see the worker's log"
    return status, "malformed HTTP request"


class _JsonErrorHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs, and checks nothing was sent yet
        code, reason = _status_and_reason(status, exc)
        resp = web.Response(
            status=code, body=orjson.dumps({"reason": reason}), content_type="application/json"
        )
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose protocol-level errors are JSON."""

    async def _make_server(self) -> Any:
        server = await super()._make_server()
        # aiohttp builds the Server itself; its protocol factory is the one thing swapped.
        server.__class__ = _JsonErrorServer
        return server
