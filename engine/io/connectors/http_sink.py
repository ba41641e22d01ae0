"""``http``: a sink that POSTs each batch as a JSON array to a URL, retrying with backoff.

Config keys: ``url`` (required, http or https), ``headers`` (a mapping added to each
request), ``timeoutMs`` (per request, default 10000), ``maxRetries`` (attempts after the
first, default 3), ``backoffMs`` (first delay, doubled each retry, default 100).

The body is ``[{"key", "value", "properties", "eventTime", "topic"}, …]`` with the value
as JSON when the payload is JSON, else as text. A 2xx answer acks the batch; a 4xx
(but 408/429) fails it at once; anything else is retried, then failed, so the input is
retried and finally dead-lettered by the sink's settlement.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import orjson

from engine.io.api import Sink, SinkRecord
from engine.io.config import ConnectorConfig

__all__ = ["HttpSink"]


def _value(record: SinkRecord) -> Any:
    """The record's value for the JSON body: as decoded when JSON-able, else the payload's JSON or text."""
    value = record.value
    if isinstance(value, (dict, list, int, float, bool)) or value is None:
        return value
    try:
        return orjson.loads(record.data)
    except orjson.JSONDecodeError:
        return record.data.decode("utf-8", "replace")


class HttpSink(Sink):
    """POSTs batches; what keeps failing is failed back to the settlement."""

    def open(self, config: dict[str, Any], context: Any) -> None:
        cfg = ConnectorConfig(config, "sinkConfig")
        self.url = cfg.string("url", required=True) or ""
        self.headers = cfg.mapping("headers")
        self.timeout_s = cfg.integer("timeoutMs", 10000, minimum=1) / 1000.0
        self.max_retries = cfg.integer("maxRetries", 3)
        self.backoff_s = cfg.integer("backoffMs", 100) / 1000.0
        if self.url and not self.url.startswith(("http://", "https://")):
            cfg._bad("url", self.url, "an http:// or https:// URL")
        cfg.check()
        self.requests = 0

    def _post(self, body: bytes) -> str | None:
        """POST once; ``None`` on success, else why, prefixed ``final:`` when retrying is useless."""
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json", **self.headers}
        )
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
                return None
        except urllib.error.HTTPError as exc:
            text = f"POST {self.url} answered {exc.code} {exc.reason}"
            return f"final:{text}" if 400 <= exc.code < 500 and exc.code not in (408, 429) else text
        except (urllib.error.URLError, OSError) as exc:
            return f"POST {self.url} failed: {getattr(exc, 'reason', exc)}"

    def write(self, records: Sequence[SinkRecord]) -> None:
        body = orjson.dumps(
            [
                {
                    "key": r.key,
                    "value": _value(r),
                    "properties": r.properties,
                    "eventTime": r.event_time,
                    "topic": r.topic,
                }
                for r in records
            ]
        )
        delay = self.backoff_s
        error = self._post(body)
        attempt = 0
        while error is not None and not error.startswith("final:") and attempt < self.max_retries:
            time.sleep(delay)  # backoff between retries of this batch (the instance's own thread)
            delay *= 2
            attempt += 1
            error = self._post(body)
        if error is None:
            for record in records:
                record.ack()
            return
        reason = error.removeprefix("final:")
        if attempt:
            reason += f" (after {attempt + 1} attempts)"
        for record in records:
            record.fail(reason)
