"""``http``: a source that accepts POSTed messages and answers 200 only once each is persisted.

Config keys: ``host`` (default ``127.0.0.1``), ``port`` (required), ``path`` (default
``/``), ``timeoutMs`` (how long a request waits for persistence, default 30000; then
503), ``authToken`` (when set, a request must carry ``Authorization: Bearer <token>``;
give it as a secret name with ``authTokenSecret`` to read it through the Context).

The body of a POST is one message; the ``key`` query parameter (or the ``X-Message-Key``
header) is its key, and ``X-Property-<name>`` headers are its properties (names lowercased). The endpoint
runs on its own thread and event loop; a request waits for its record's ``ack`` (200)
or ``fail`` (503 with the reason).
"""

from __future__ import annotations

import asyncio
import hmac
import queue
import threading
from typing import Any

from aiohttp import web

from engine.io.api import Record, Source
from engine.io.config import ConnectorConfig

__all__ = ["HttpSource"]

_BATCH = 1000


class HttpSource(Source):
    """An aiohttp endpoint feeding a queue that ``read`` drains."""

    def open(self, config: dict[str, Any], context: Any) -> None:
        cfg = ConnectorConfig(config, "sourceConfig")
        self.host = cfg.string("host", "127.0.0.1") or "127.0.0.1"
        self.port = cfg.integer("port", -1, minimum=0)
        if self.port < 0 or self.port > 65535:
            cfg._bad("port", config.get("port"), "required: a TCP port 0..65535 (0 picks a free one)")
        self.path = cfg.string("path", "/") or "/"
        self.timeout_s = cfg.integer("timeoutMs", 30000, minimum=1) / 1000.0
        token = cfg.string("authToken", None)
        secret = cfg.string("authTokenSecret", None)
        cfg.check()
        if secret and context is not None:
            token = context.get_secret(secret)
        self.token = token
        self.queue: queue.Queue[Record] = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, name="http-source", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # the port is taken or the host unknown: open() raises it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and self.port == 0:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _handle(self, request: web.Request) -> web.Response:
        if self.token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return web.json_response(
                    {"reason": "a valid Authorization: Bearer token is required"}, status=401
                )
        body = await request.read()
        done: asyncio.Future[str | None] = self.loop.create_future()
        loop = self.loop

        def resolve(reason: str | None) -> None:
            if not done.done():
                done.set_result(reason)

        def settle(reason: str | None) -> None:  # source thread: hand over only
            loop.call_soon_threadsafe(resolve, reason)

        # Header names are case-insensitive (clients capitalize them): the property is the rest, lowercased.
        props = {k[11:].lower(): v for k, v in request.headers.items() if k.lower().startswith("x-property-")}
        key = request.query.get("key") or request.headers.get("X-Message-Key")
        self.queue.put(
            Record(
                body,
                key=key,
                properties=props,
                ack=lambda: settle(None),
                fail=lambda r: settle(r or "failed"),
            )
        )
        try:
            reason = await asyncio.wait_for(done, self.timeout_s)
        except asyncio.TimeoutError:
            return web.json_response({"reason": "the message was not persisted in time"}, status=503)
        if reason is not None:
            return web.json_response({"reason": reason}, status=503)
        return web.json_response({"persisted": True})

    def read(self) -> list[Record] | None:
        try:
            first = self.queue.get(timeout=0.1)
        except queue.Empty:
            return None
        records = [first]
        while len(records) < _BATCH:
            try:
                records.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return records

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        # Requests still queued were never sent: they answer 503 when their wait ends.
