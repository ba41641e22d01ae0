"""``/admin/v3/functions/{tenant}/{namespace}/{name}/state/{key}``: read and write a function's state.

Counters and values share one key space: a read answers what the last write put
there, a ``numberValue`` replaces a value and a ``stringValue``/``byteValue`` replaces
a counter (the state store enforces it for functions too).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_request import FileField

from engine.api.bodies import JSON_BODY_LIMIT, read_form, read_json, read_limited
from engine.api.common import existing, fqfn_of, worker_of
from engine.api.errors import http_error
from engine.state.store import StateStore

__all__ = ["add_state_routes", "parse_state_body"]

_INT64 = (-(2**63), 2**63 - 1)


def _store(request: web.Request) -> StateStore:
    store = worker_of(request).state_store
    if store is None:
        raise http_error(503, "this worker has no state store")
    return store


async def get_state(request: web.Request) -> web.Response:
    worker, fqfn = worker_of(request), fqfn_of(request)
    existing(worker, fqfn)
    key = request.match_info["key"]
    store = _store(request)
    counter = await asyncio.to_thread(store.get_counter, fqfn, key)
    if counter is not None:
        return web.json_response({"key": key, "numberValue": counter, "version": 0})
    value = await asyncio.to_thread(store.get_value, fqfn, key)
    if value is None:
        raise http_error(404, f"key {key!r} of {fqfn} does not exist")
    try:
        return web.json_response({"key": key, "stringValue": value.decode("utf-8"), "version": 0})
    except UnicodeDecodeError:
        return web.json_response({"key": key, "byteValue": base64.b64encode(value).decode(), "version": 0})


def parse_state_body(body: Any, key: str) -> int | bytes:
    """The counter (``int``) or value (``bytes``) a FunctionState body sets; raises a 400 naming the field."""
    if not isinstance(body, dict):
        raise http_error(400, "state: expected a FunctionState JSON object")
    if body.get("key") not in (None, key):
        raise http_error(400, f"key: got {body.get('key')!r} in the body but {key!r} in the path")
    given = [f for f in ("numberValue", "stringValue", "byteValue") if body.get(f) is not None]
    if len(given) != 1:
        raise http_error(400, "state: give exactly one of numberValue, stringValue or byteValue")
    field = given[0]
    value = body[field]
    if field == "numberValue":
        if isinstance(value, bool) or not isinstance(value, int) or not _INT64[0] <= value <= _INT64[1]:
            raise http_error(400, f"numberValue: got {value!r}; expected an integer from -2**63 to 2**63-1")
        return value
    if not isinstance(value, str):
        raise http_error(400, f"{field}: got {value!r}; expected a string")
    if field == "stringValue":
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise http_error(400, f"byteValue: got {value[:40]!r}; expected base64")


async def _state_body(request: web.Request) -> Any:
    if not request.content_type.startswith("multipart/"):
        return await read_json(request, "state")
    if request.content_length is not None and request.content_length > JSON_BODY_LIMIT:
        await read_limited(request, JSON_BODY_LIMIT)  # answers 413
    form = await read_form(request)
    raw = form.get("state")
    data = raw.file.read() if isinstance(raw, FileField) else (raw or "{}")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise http_error(400, f"state: the form field is not valid JSON ({exc.msg})")


async def put_state(request: web.Request) -> web.Response:
    worker, fqfn = worker_of(request), fqfn_of(request)
    existing(worker, fqfn)
    key = request.match_info["key"]
    value = parse_state_body(await _state_body(request), key)
    store = _store(request)
    if isinstance(value, int):
        await asyncio.to_thread(store.commit, fqfn, {key: value}, {key}, {})
    else:
        await asyncio.to_thread(store.commit, fqfn, {}, set(), {key: value})
    return web.json_response({"key": key})


def add_state_routes(app: web.Application, fn: str) -> None:
    """Mount the state routes under the function path ``fn``."""
    app.router.add_get(fn + "/state/{key}", get_state)
    app.router.add_post(fn + "/state/{key}", put_state)
