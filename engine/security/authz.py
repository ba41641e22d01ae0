"""Authorization: superusers, tenant admins, and roles granted ``functions`` on a namespace."""

from __future__ import annotations

from engine.security.auth_settings import AuthSettings
from engine.security.tenants import TenantStore

__all__ = ["AuthorizationService"]


class AuthorizationService:
    """Answers what a role may do, from the settings and the cluster's tenant records.

    With authorization off every authenticated role may do anything (as in Pulsar).
    """

    def __init__(self, settings: AuthSettings, tenants: TenantStore) -> None:
        self.settings = settings
        self.tenants = tenants

    @property
    def enabled(self) -> bool:
        return self.settings.authorization_enabled

    def is_superuser(self, role: str | None) -> bool:
        if not self.enabled:
            return True
        return role is not None and role in self.settings.super_user_roles

    def is_tenant_admin(self, role: str | None, tenant: str) -> bool:
        """Superuser, or one of the tenant's admin roles."""
        if self.is_superuser(role):
            return True
        info = self.tenants.tenants.get(tenant)
        return info is not None and role in info.admin_roles

    def can_functions(self, role: str | None, tenant: str, namespace: str) -> bool:
        """May manage the functions of ``tenant/namespace`` and read their state."""
        if self.is_tenant_admin(role, tenant):
            return True
        grants = self.tenants.permissions.get(f"{tenant}/{namespace}", {})
        return role is not None and "functions" in grants.get(role, set())
