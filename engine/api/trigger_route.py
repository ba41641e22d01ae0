"""``POST /admin/v3/functions/{tenant}/{namespace}/{name}/trigger``: send a value, answer the output."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pulsar
from aiohttp import web
from aiohttp.web_request import FileField

from engine.api.bodies import read_form, read_json
from engine.api.common import existing, fqfn_of, worker_of
from engine.api.errors import http_error
from engine.config import normalize_topic, resolve
from engine.config.details import config_from_details
from engine.config.validation import FunctionSpec
from engine.security import is_reserved_topic

__all__ = ["trigger"]

log = logging.getLogger(__name__)


async def _trigger_fields(request: web.Request) -> dict[str, Any]:
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await read_form(request)
        return {
            name: item.file.read() if isinstance(item, FileField) else str(item).encode()
            for name, item in form.items()
        }
    body = await read_json(request, "trigger")
    if not isinstance(body, dict):
        raise http_error(400, "trigger: expected a JSON object with data (and optionally topic)")
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise http_error(400, f"{name}: got {value!r}; expected a string")
        fields[name] = value.encode()
    return fields


def _trigger_topic(spec: FunctionSpec, fields: dict[str, Any]) -> str:
    given = fields.get("topic", b"")
    try:
        name = given.decode() if given else spec.inputs[0].topic
        topic = normalize_topic(name, spec.tenant, spec.namespace)
    except (UnicodeDecodeError, ValueError) as exc:
        raise http_error(400, f"topic: got {given!r}; {exc}")
    if is_reserved_topic(topic):
        raise http_error(400, f"topic: got {topic!r}; the worker's internal namespace cannot be triggered")
    inputs = {i.topic for i in spec.inputs if not i.is_regex_pattern}
    if topic not in inputs:
        raise http_error(400, f"topic: got {topic!r}; expected one of the function's inputs {sorted(inputs)}")
    return topic


async def trigger(request: web.Request) -> web.Response:
    """Send a value to an input and return the output it produced (matched by a unique key)."""
    worker, fqfn = worker_of(request), fqfn_of(request)
    md = existing(worker, fqfn)
    spec = resolve(config_from_details(md.functionDetails))
    fields = await _trigger_fields(request)
    value = fields.get("data") or fields.get("dataStream") or fields.get("triggerValue")
    if value is None:
        raise http_error(400, "data: a trigger value is required")
    topic = _trigger_topic(spec, fields)
    if spec.output is None:
        raise http_error(400, f"{fqfn} has no output topic to read the result from")
    token = f"trigger-{uuid.uuid4().hex}"
    client = worker.client
    assert client is not None

    def run() -> bytes | None:
        reader = client.create_reader(spec.output, pulsar.MessageId.latest)
        try:
            producer = client.create_producer(topic)
            try:
                producer.send(value, partition_key=token)
            finally:
                producer.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    msg = reader.read_next(500)
                except pulsar.Timeout:
                    continue
                if msg.partition_key() == token:
                    return bytes(msg.data())
            return None
        finally:
            reader.close()

    try:
        out = await asyncio.to_thread(run)
    except pulsar.MessageTooBig:
        raise http_error(413, "data: the trigger value is larger than the broker accepts")
    except pulsar.PulsarException as exc:
        log.warning("trigger of %s on %s failed: %s", fqfn, topic, exc)
        raise http_error(503, f"the broker refused the trigger value on {topic}; see the worker's log")
    if out is None:
        raise http_error(408, f"{fqfn} produced no output for the trigger value within 10 s")
    return web.Response(body=out, content_type="application/octet-stream")
