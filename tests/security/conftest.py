"""A real worker process on the session's broker, and raw HTTP helpers for hostile requests."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, new_cluster

EXAMPLE = Path(__file__).resolve().parents[1] / "integration" / "exclaim_example.py"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def reason(self) -> str:
        """The ``reason`` of a JSON error body (asserting the body is one)."""
        assert self.headers.get("content-type", "").startswith("application/json"), (self.status, self.body)
        data = self.json()
        assert isinstance(data, dict) and isinstance(data.get("reason"), str), data
        return str(data["reason"])


def call(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Answer:
    """Send exactly this request (raw path, any method and headers) and read the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def call_json(port: int, method: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Answer:
    return call(
        port, method, path, orjson.dumps(body), {"Content-Type": "application/json", **(headers or {})}
    )


def multipart(fields: dict[str, tuple[str | None, bytes]]) -> tuple[bytes, str]:
    """``(body, content type)`` of a multipart/form-data body; ``fields``: name -> (filename, content)."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, (filename, content) in fields.items():
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def function_config(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "tenant": "public",
        "namespace": "default",
        "name": name,
        "className": "exclaim_example.Exclaim",
        "inputs": [f"{name}-in"],
        "output": f"{name}-out",
        **overrides,
    }


def create_function(
    port: int, name: str, headers: dict[str, str] | None = None, tenant: str = "public", **overrides: Any
) -> Answer:
    """POST a function with the example package (multipart, as pulsar-admin sends it)."""
    config = function_config(name, tenant=tenant, **overrides)
    body, ctype = multipart(
        {
            "functionConfig": (None, orjson.dumps(config)),
            "data": ("exclaim_example.py", EXAMPLE.read_bytes()),
        }
    )
    return call(
        port,
        "POST",
        f"/admin/v3/functions/{tenant}/default/{name}",
        body,
        {"Content-Type": ctype, **(headers or {})},
    )


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker1(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One real worker process (its own functions namespace on the session broker)."""
    c = new_cluster(broker, str(tmp_path_factory.mktemp("secworker")), 1)
    yield c
    c.stop_all()
