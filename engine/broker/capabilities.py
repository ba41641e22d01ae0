"""What a broker does and does not do, declared once per broker kind.

Every workaround for a broker's fault runs only where a capability here asks for it,
and says so once in the log (:meth:`BrokerCapabilities.workaround`). The embedded
pulsar-lite declares its quirks; a ``pulsar://`` URL defaults to Apache Pulsar's
behaviour, and ``--broker-kind pulsar-lite`` declares an external pulsar-lite.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

__all__ = ["BROKER_KINDS", "BrokerCapabilities", "workarounds_run"]

log = logging.getLogger(__name__)

#: The broker kinds that can be declared.
BROKER_KINDS = ("apache", "pulsar-lite")

_announced: set[str] = set()
_announce_lock = threading.Lock()


def workarounds_run() -> set[str]:
    """Names of the workarounds that have run in this process so far (``kind:name``)."""
    with _announce_lock:
        return set(_announced)


@dataclass(frozen=True)
class BrokerCapabilities:
    """Facts about one broker kind that the engine's correctness arguments depend on.

    Attributes
    ----------
    kind
        ``"apache"`` or ``"pulsar-lite"``.
    nack_ignored_on_ordered
        Negative acks and redelivery requests are ignored on Failover and Exclusive
        subscriptions: an ordered consumer must be reopened to see unacked inputs again.
    killed_consumer_may_lose_unacked
        Messages handed to a consumer that is killed may never be delivered again: an
        EFFECTIVELY_ONCE instance must read such gaps back from the topic.
    producer_deduplication
        The broker drops producer sends whose sequence id it has seen (``None``: it
        depends on the broker's configuration, as on Apache Pulsar).
    consumer_ids_collide
        Consumer ids are keyed per subscription across connections, so two processes'
        consumers on one subscription can collide: spread the ids at client start.
    seek_supported
        ``seek`` on consumers and readers rewinds.
    duplicates_on_ordered
        Failover/Exclusive consumers may receive entries again that were already acked.
    failover_may_stall
        A Failover subscription may deliver to no one after its active consumer died.
    regex_subscriptions
        Topic-pattern subscriptions work (pulsar-lite answers them with a LookupError).
    schema_registry
        The broker stores the schemas producers and consumers register, checks their
        compatibility and serves them back (pulsar-lite accepts any schema, checks none
        and answers no schema look-up).
    """

    kind: str
    nack_ignored_on_ordered: bool
    killed_consumer_may_lose_unacked: bool
    producer_deduplication: bool | None
    consumer_ids_collide: bool
    seek_supported: bool
    duplicates_on_ordered: bool
    failover_may_stall: bool
    regex_subscriptions: bool = True
    schema_registry: bool = True

    @classmethod
    def apache(cls) -> BrokerCapabilities:
        """Apache Pulsar: none of the faults; de-duplication as the namespace configures it."""
        return cls(
            kind="apache",
            nack_ignored_on_ordered=False,
            killed_consumer_may_lose_unacked=False,
            producer_deduplication=None,
            consumer_ids_collide=False,
            seek_supported=True,
            duplicates_on_ordered=False,
            failover_may_stall=False,
        )

    @classmethod
    def pulsar_lite(cls) -> BrokerCapabilities:
        """pulsar-lite 0.2 as measured (see the reference notes on its faults)."""
        return cls(
            kind="pulsar-lite",
            nack_ignored_on_ordered=True,
            killed_consumer_may_lose_unacked=True,
            producer_deduplication=False,
            consumer_ids_collide=True,
            seek_supported=False,
            duplicates_on_ordered=True,
            failover_may_stall=True,
            regex_subscriptions=False,
            schema_registry=False,
        )

    @classmethod
    def for_kind(cls, kind: str) -> BrokerCapabilities:
        """The capabilities of ``kind``; raises ``ValueError`` naming the accepted kinds."""
        if kind == "apache":
            return cls.apache()
        if kind == "pulsar-lite":
            return cls.pulsar_lite()
        raise ValueError(f"broker kind {kind!r}: expected one of {', '.join(BROKER_KINDS)}")

    def workaround(self, name: str, why: str) -> None:
        """Log, once per process, that the workaround ``name`` runs on this broker, and why."""
        key = f"{self.kind}:{name}"
        with _announce_lock:
            if key in _announced:
                return
            _announced.add(key)
        log.info("broker %s: %s (%s)", self.kind, name, why)
