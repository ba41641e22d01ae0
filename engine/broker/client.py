"""Create ``pulsar.Client`` objects from Magnetar's broker options."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import pulsar

from engine.broker.adapter import consumer_configuration, raw_client
from engine.broker.capabilities import BrokerCapabilities

log = logging.getLogger(__name__)

__all__ = [
    "CHILD_CONSUMER_ID_BLOCK",
    "RESTART_SPREAD",
    "BrokerOptions",
    "child_broker_options",
    "client_logger",
    "make_client",
    "spread_consumer_ids",
    "take_consumer_ids",
]

#: Consumer ids kept for each instance by a process-runtime child (see :func:`child_broker_options`).
CHILD_CONSUMER_ID_BLOCK = 64


def client_logger(path: str | None = None) -> pulsar.FileLogger:
    """The client's logger: WARN and above, written by the client itself to ``path`` (or stderr).

    A Python logger would make the client's I/O threads take the GIL for every line,
    which can stall its keep-alives behind busy instance threads (and has deadlocked in
    pulsar-client-python before); stdout is kept for the program's own output.
    """
    if path:
        # Created private to its owner before the client opens it for appending.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    return pulsar.FileLogger(pulsar.LoggerLevel.Warn, path or "/dev/stderr")


@dataclass
class BrokerOptions:
    """How to reach the broker: URL, authentication and TLS."""

    url: str
    auth_plugin: str | None = None
    auth_params: str | None = None
    use_tls: bool = False
    tls_allow_insecure: bool = False
    tls_trust_cert_path: str | None = None
    tls_hostname_verification: bool = False
    consumer_id_spread: int = 0
    #: Take exactly this many consumer ids at start instead of a random spread (``None``: spread).
    #: A process-runtime child's, from :func:`child_broker_options`.
    consumer_id_offset: int | None = None
    #: What kind of broker this is (see :mod:`engine.broker.capabilities`): a ``pulsar://``
    #: URL is Apache Pulsar unless declared ``pulsar-lite``; the embedded broker is pulsar-lite.
    kind: str = "apache"
    #: File the client writes its own log to (WARN and above); stderr when ``None``.
    client_log_path: str | None = None

    @property
    def capabilities(self) -> BrokerCapabilities:
        """What this broker does and does not do."""
        return BrokerCapabilities.for_kind(self.kind)


def spread_consumer_ids(client: pulsar.Client, upper: int, timeout: float = 30.0) -> int:
    """Advance the client's consumer-id counter by a random amount below ``upper``.

    pulsar-lite keys a subscription's consumers by the consumer id alone, although ids
    are only unique per connection: two processes whose consumers on one subscription
    got the same id collide, and the broker drops the second connection. Every client
    numbers its consumers from 0 in the same order, so worker processes would collide
    on their first shared subscription. Starting each process at a random offset makes
    that unlikely (about 1 in ``upper`` per pair). Returns the offset.

    Only for a broker whose capabilities say ``consumer_ids_collide``
    (:func:`make_client` decides). A process-runtime child takes a fixed offset instead
    (:func:`child_broker_options`).
    """
    if upper < 2:
        return 0
    count = random.randrange(1, upper)  # an offset of 0 would protect nothing
    take_consumer_ids(client, count, timeout)
    return count


def take_consumer_ids(client: pulsar.Client, count: int, timeout: float = 30.0) -> None:
    """Advance the client's consumer-id counter by ``count``: its next consumer gets id ``count``.

    The ids are taken by short-lived subscriptions on a non-persistent topic, opened
    concurrently (each costs a subscribe round trip, about 0.05 ms pipelined).
    Subscriptions that have not answered within ``timeout`` seconds are left to the
    client: the ids were taken when they were sent.
    """
    if count < 1:
        return
    done = threading.Semaphore(0)
    opened: list[Any] = []
    ok = pulsar.Result.Ok

    def on_subscribe(result: Any, consumer: Any) -> None:  # client thread: hand over only
        opened.append(consumer if result == ok else None)
        done.release()

    native = raw_client(client)
    conf = consumer_configuration()
    # Each consumer preallocates its receiver queue; these receive nothing, and with the
    # default queue the thousands of them would cost a process tens of MB.
    conf.receiver_queue_size(1)
    topic = "non-persistent://public/default/__magnetar_consumer_id_spread__"
    tag = uuid.uuid4().hex
    for i in range(count):
        native.subscribe_async(topic, f"spread-{tag}-{i}", conf, on_subscribe)
    answered = 0
    for _ in range(count):
        if not done.acquire(timeout=timeout):
            log.warning(
                "consumer-id spread: %d of %d subscriptions unanswered after %.0f s; going on",
                count - answered,
                count,
                timeout,
            )
            break
        answered += 1
    for consumer in list(opened):
        if consumer is not None:
            consumer.close_async(lambda _result: None)


#: The random range a restarted child's ids are spread over, above every first child's block.
RESTART_SPREAD = 4096


def child_broker_options(
    opts: BrokerOptions, instance_id: int, launch: int = 0, parallelism: int = 1
) -> BrokerOptions:
    """The broker options the child for ``instance_id``'s ``launch``-th start connects with.

    A child's client serves one instance, and on its subscriptions its consumers can only
    meet those of the *other instances of the same function*. So instead of a random
    spread (below 4096: on average 2,048 throwaway subscriptions, which made each child
    cost tens of MB and up to seconds to start), the first child of instance ``i``
    takes a fixed offset of ``i * CHILD_CONSUMER_ID_BLOCK``: the ids of different
    instances' first children cannot meet while each has used fewer than
    :data:`CHILD_CONSUMER_ID_BLOCK` ids. Instance 0 takes none, instance 7 takes 448
    (about 30 ms).

    A later start of the same instance (``launch`` ≥ 1: after its child died, or failed
    to start) must not reuse those ids: pulsar-lite may keep a dead child's consumers
    for a long while, and the new child's subscribe would collide with them. It takes
    a random offset above every first child's block (``parallelism`` blocks), below
    :data:`RESTART_SPREAD` more, as worker clients do; a restart costs what every start
    used to.

    * An instance moved to another worker starts there at ``launch`` 0 with the ids its
      old child had: the old worker stops that child first (closing its consumers);
      if the old worker died instead and its child's consumer lingers, the new child's
      start fails and its next start is spread.
    * An input consumer reopened to redeliver (``nack_ignored_on_ordered``) takes one
      new id per input topic partition; readers take one each. A first child reopened
      some 60 times runs into the next instance's block and may collide there, as two
      randomly spread processes may after enough reopens.
    * Thread-runtime instances (the worker's own client) keep the worker's random
      spread; a function runs in one runtime, so the two schemes do not share a
      subscription.

    Only a broker whose consumer ids collide takes any ids (:func:`make_client`).
    """
    if launch == 0:
        offset = instance_id * CHILD_CONSUMER_ID_BLOCK
    else:
        offset = max(1, parallelism) * CHILD_CONSUMER_ID_BLOCK + random.randrange(RESTART_SPREAD)
    return dataclasses.replace(opts, consumer_id_spread=0, consumer_id_offset=offset)


def _authentication(opts: BrokerOptions) -> pulsar.Authentication | None:
    if not opts.auth_plugin and not opts.auth_params:
        return None
    plugin = opts.auth_plugin or ""
    params = opts.auth_params or ""
    if not plugin or plugin.lower().endswith("authenticationtoken") or plugin.lower() == "token":
        token = params[len("token:") :] if params.startswith("token:") else params
        if token.startswith("file:"):
            with open(token[len("file:") :].removeprefix("//")) as fh:
                token = fh.read().strip()
        return pulsar.AuthenticationToken(token)
    return pulsar.Authentication(plugin, params)


def make_client(opts: BrokerOptions, io_threads: int = 1) -> pulsar.Client:
    """A client for ``opts``; its own log lines go to stderr, WARN and above."""
    if not opts.url.startswith(("pulsar://", "pulsar+ssl://")):
        raise ValueError(f"--broker-url {opts.url!r}: expected pulsar://host:port or pulsar+ssl://host:port")
    client = pulsar.Client(
        opts.url,
        authentication=_authentication(opts),
        operation_timeout_seconds=30,
        io_threads=io_threads,
        message_listener_threads=1,
        use_tls=opts.use_tls or opts.url.startswith("pulsar+ssl://"),
        tls_trust_certs_file_path=opts.tls_trust_cert_path,
        tls_allow_insecure_connection=opts.tls_allow_insecure,
        tls_validate_hostname=opts.tls_hostname_verification,
        logger=client_logger(opts.client_log_path),
    )
    caps = opts.capabilities
    if opts.consumer_id_offset is not None and caps.consumer_ids_collide:
        caps.workaround(
            "consumer-id-offset",
            "consumer ids collide across connections; an instance's first child starts its ids "
            "at a fixed offset per instance id, a restarted one at a random offset",
        )
        take_consumer_ids(client, opts.consumer_id_offset)
    elif opts.consumer_id_spread and caps.consumer_ids_collide:
        caps.workaround(
            "consumer-id-spread",
            f"consumer ids collide across connections; offsetting this client's ids by up to "
            f"{opts.consumer_id_spread}",
        )
        spread_consumer_ids(client, opts.consumer_id_spread)
    return client
