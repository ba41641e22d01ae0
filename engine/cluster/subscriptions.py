"""Remove a deleted function's input subscriptions (``cleanupSubscription``).

As in Pulsar, this is done by each worker that ran instances of the function, once
the last of them here has stopped because its assignment was deleted (not moved to
another worker) and no assignment of the function is left in the cluster
(:func:`cleanup_after_retired`). The worker that handles the REST delete cannot do
it: an instance on another worker may still be consuming, or still starting, and
its consumer would re-create the subscription.

pulsar-lite has no admin API, so a subscription is removed the way any client can:
subscribe to it and unsubscribe. Pulsar refuses that while another consumer is
connected, so it is retried until a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pulsar

from engine.proto import Function_pb2 as pb

__all__ = ["cleanup_after_retired", "remove_subscriptions", "subscription_name"]

log = logging.getLogger(__name__)

_CONSUMER_TYPES = {
    pb.SHARED: pulsar.ConsumerType.Shared,
    pb.FAILOVER: pulsar.ConsumerType.Failover,
    pb.KEY_SHARED: pulsar.ConsumerType.KeyShared,
}


def subscription_name(details: pb.FunctionDetails) -> str:
    """The subscription the function's instances use: its own, or ``tenant/namespace/name``."""
    return details.source.subscriptionName or f"{details.tenant}/{details.namespace}/{details.name}"


def _unsubscribe(client: pulsar.Client, details: pb.FunctionDetails, topic: Any) -> None:
    consumer = client.subscribe(
        topic,
        subscription_name(details),
        consumer_type=_CONSUMER_TYPES.get(details.source.subscriptionType, pulsar.ConsumerType.Shared),
        receiver_queue_size=1,
    )
    try:
        consumer.unsubscribe()
    finally:
        consumer.close()


async def remove_subscriptions(
    client: pulsar.Client, details: pb.FunctionDetails, timeout: float = 30.0
) -> list[str]:
    """Unsubscribe the function's subscription from each of its inputs.

    Parameters
    ----------
    client
        A client of the function's broker.
    details
        The deleted function's details (its inputs, subscription name and type).
    timeout
        Seconds to keep trying in all.

    Returns
    -------
    list[str]
        The inputs whose subscription could not be removed (each is logged with the cause).
    """
    deadline = time.monotonic() + timeout
    fqfn = f"{details.tenant}/{details.namespace}/{details.name}"
    failed: list[str] = []
    for name, spec in details.source.inputSpecs.items():
        topic: Any = re.compile(name) if spec.isRegexPattern else name
        while True:
            try:
                await asyncio.to_thread(_unsubscribe, client, details, topic)
                break
            except pulsar.PulsarException as exc:
                if time.monotonic() >= deadline:
                    log.warning(
                        "function %s: cannot remove subscription %r of %s: %s",
                        fqfn,
                        subscription_name(details),
                        name,
                        exc,
                    )
                    failed.append(name)
                    break
                await asyncio.sleep(0.2)
    return failed


async def cleanup_after_retired(
    client: pulsar.Client,
    md: pb.FunctionMetaData,
    caught_up: Callable[[], Awaitable[None]],
    deleted: Callable[[], bool],
) -> list[str]:
    """Remove a function's subscriptions after its last instance on this worker has stopped.

    Parameters
    ----------
    client
        A client of the function's broker.
    md
        The function's metadata, as its instances here last ran it.
    caught_up
        Waits until this worker has applied the metadata and assignments written so far.
    deleted
        True when the function is no longer registered and no worker is assigned any
        instance of it (so it was deleted, not moved or scaled down, and this worker
        holds the last of its instances).

    Returns
    -------
    list[str]
        The inputs whose subscription could not be removed; empty also when nothing was to do.
    """
    details = md.functionDetails
    if not details.source.cleanupSubscription or not details.source.inputSpecs:
        return []
    await caught_up()
    if not deleted():
        return []
    fqfn = f"{details.tenant}/{details.namespace}/{details.name}"
    log.info("function %s deleted: removing its subscription %r", fqfn, subscription_name(details))
    return await remove_subscriptions(client, details)
