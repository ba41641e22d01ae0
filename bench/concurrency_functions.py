"""Functions measured by ``bench/concurrency.py`` (each does the same work two ways)."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import numpy as np
from pulsar import Function


class AsyncSleep(Function):  # type: ignore[misc]
    async def process(self, input: Any, context: Any) -> Any:
        await asyncio.sleep(0.005)
        return None


class SerialSleep(Function):  # type: ignore[misc]
    def process(self, input: Any, context: Any) -> Any:
        time.sleep(0.005)
        return None


class AsyncHttp(Function):  # type: ignore[misc]
    """GETs the URL in userConfig ``url`` with aiohttp (one session per instance)."""

    session: Any = None

    async def process(self, input: Any, context: Any) -> Any:
        import aiohttp

        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with self.session.get(context.get_user_config_value("url")) as resp:
            await resp.read()
        return None


class SerialHttp(Function):  # type: ignore[misc]
    def process(self, input: Any, context: Any) -> Any:
        with urllib.request.urlopen(context.get_user_config_value("url")) as resp:
            resp.read()
        return None


class BatchSum(Function):  # type: ignore[misc]
    total = 0.0

    def process(self, input: Any, context: Any) -> Any:
        raise AssertionError("process_batch is called instead")

    def process_batch(self, inputs: Any, context: Any) -> Any:
        BatchSum.total += float(np.sum(inputs))
        return [None] * len(inputs)


class MessageSum(Function):  # type: ignore[misc]
    total = 0.0

    def process(self, input: Any, context: Any) -> Any:
        MessageSum.total += input
        return None


def window_sum(inputs: Any) -> Any:
    return None if not inputs else str(sum(int(x) for x in inputs))
