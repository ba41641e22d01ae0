"""The worker's security settings that do not depend on authentication being configured."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_MAX_INSTANCES_PER_TENANT", "DEFAULT_MAX_PARALLELISM", "SecuritySettings"]

DEFAULT_MAX_PARALLELISM = 1000
DEFAULT_MAX_INSTANCES_PER_TENANT = 10000


@dataclass
class SecuritySettings:
    """Safe-by-default settings of one worker.

    Attributes
    ----------
    authentication_enabled
        Set when requests are authenticated; the Host/Origin guard then stands aside,
        because a forged cross-site request carries no credentials.
    allow_unauthenticated_remote
        Accept a non-loopback listen address without authentication.
    allowed_hosts
        Extra names (besides loopback ones) a request's ``Host`` may carry.
    max_parallelism
        The largest ``parallelism`` a function may ask for.
    max_instances_per_tenant
        The most instances (sum of parallelism) all functions of one tenant may have.
    """

    authentication_enabled: bool = False
    allow_unauthenticated_remote: bool = False
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    max_parallelism: int = DEFAULT_MAX_PARALLELISM
    max_instances_per_tenant: int = DEFAULT_MAX_INSTANCES_PER_TENANT
