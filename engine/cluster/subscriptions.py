"""Remove a deleted function's input subscriptions (``cleanupSubscription``).

pulsar-lite has no admin API, so a subscription is removed the way any client can:
subscribe to it and unsubscribe. That only works once the function's own consumers are
gone (a broker refuses to drop a subscription that other consumers still use, and a
consumer dropped under a running instance would re-create it on reconnect), so the
caller first waits for the instances to stop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pulsar

from engine.config.validation import FunctionSpec

__all__ = ["remove_subscriptions"]

log = logging.getLogger(__name__)

_CONSUMER_TYPES = {
    "SHARED": pulsar.ConsumerType.Shared,
    "FAILOVER": pulsar.ConsumerType.Failover,
    "KEY_SHARED": pulsar.ConsumerType.KeyShared,
}


def _unsubscribe(client: pulsar.Client, spec: FunctionSpec, topic: Any) -> None:
    consumer = client.subscribe(
        topic,
        spec.subscription_name,
        consumer_type=_CONSUMER_TYPES[spec.subscription_type],
        receiver_queue_size=1,
    )
    try:
        consumer.unsubscribe()
    finally:
        consumer.close()


async def remove_subscriptions(
    client: pulsar.Client,
    spec: FunctionSpec,
    stopped: Callable[[], bool],
    timeout: float = 30.0,
) -> list[str]:
    """Unsubscribe ``spec``'s subscription from each input once ``stopped()`` is true.

    Parameters
    ----------
    client
        A client of the function's broker.
    spec
        The deleted function.
    stopped
        True once no instance of the function runs any more (polled).
    timeout
        Seconds to keep trying in all.

    Returns
    -------
    list[str]
        The inputs whose subscription could not be removed (each is logged with the cause).
    """
    deadline = time.monotonic() + timeout
    while not stopped() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    failed: list[str] = []
    for inp in spec.inputs:
        topic: Any = re.compile(inp.topic) if inp.is_regex_pattern else inp.topic
        while True:
            try:
                await asyncio.to_thread(_unsubscribe, client, spec, topic)
                break
            except pulsar.PulsarException as exc:
                if time.monotonic() >= deadline:
                    log.warning(
                        "function %s: cannot remove subscription %r of %s: %s",
                        spec.fqfn,
                        spec.subscription_name,
                        inp.topic,
                        exc,
                    )
                    failed.append(inp.topic)
                    break
                await asyncio.sleep(0.2)
    return failed
