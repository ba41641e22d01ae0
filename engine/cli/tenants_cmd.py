"""``magnetar tenants`` and ``magnetar namespaces``: tenant admin roles and namespace grants
(as ``pulsar-admin tenants`` / ``namespaces``)."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

import orjson

from engine.cli.http_client import AdminError, add_global_flags, admin_command, call

__all__ = ["add_tenant_parsers"]


def _print(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _tenant_body(args: argparse.Namespace) -> dict[str, Any]:
    return {"adminRoles": _split(args.admin_roles), "allowedClusters": _split(args.allowed_clusters)}


def _tenant(args: argparse.Namespace) -> str:
    return quote(args.tenant, safe="")


def _namespace(args: argparse.Namespace) -> str:
    parts = args.namespace.split("/")
    if len(parts) != 2 or not all(parts):
        raise AdminError(f"namespace: got {args.namespace!r}; expected tenant/namespace")
    return "/".join(quote(p, safe="") for p in parts)


def cmd_create(args: argparse.Namespace) -> None:
    call(args, "PUT", f"/admin/v2/tenants/{_tenant(args)}", json=_tenant_body(args))


def cmd_update(args: argparse.Namespace) -> None:
    call(args, "POST", f"/admin/v2/tenants/{_tenant(args)}", json=_tenant_body(args))


def cmd_get(args: argparse.Namespace) -> None:
    _print(call(args, "GET", f"/admin/v2/tenants/{_tenant(args)}"))


def cmd_list(args: argparse.Namespace) -> None:
    for name in call(args, "GET", "/admin/v2/tenants"):
        print(name)


def cmd_delete(args: argparse.Namespace) -> None:
    call(args, "DELETE", f"/admin/v2/tenants/{_tenant(args)}")


def cmd_grant(args: argparse.Namespace) -> None:
    actions = _split(args.actions)
    if not actions:
        raise AdminError(
            "--actions: give one or more of produce, consume, functions, sources, sinks, packages"
        )
    call(
        args,
        "POST",
        f"/admin/v2/namespaces/{_namespace(args)}/permissions/{quote(args.role, safe='')}",
        json=actions,
    )


def cmd_revoke(args: argparse.Namespace) -> None:
    call(args, "DELETE", f"/admin/v2/namespaces/{_namespace(args)}/permissions/{quote(args.role, safe='')}")


def cmd_permissions(args: argparse.Namespace) -> None:
    _print(call(args, "GET", f"/admin/v2/namespaces/{_namespace(args)}/permissions"))


def _wrap(fn: Any) -> Any:
    return admin_command(fn)


def _verb(sub: argparse._SubParsersAction, name: str, fn: Any, helptext: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=helptext)
    add_global_flags(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the worker")
    p.set_defaults(handler=_wrap(fn))
    return p


def add_tenant_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``tenants`` and ``namespaces``."""
    tenants = sub.add_parser("tenants", help="tenants and their admin roles (as pulsar-admin tenants)")
    tsub = tenants.add_subparsers(dest="tenants_verb", metavar="VERB")
    for name, fn, helptext in (
        ("create", cmd_create, "create a tenant"),
        ("update", cmd_update, "replace a tenant's admin roles and clusters"),
    ):
        p = _verb(tsub, name, fn, helptext)
        p.add_argument("tenant")
        p.add_argument(
            "-r", "--admin-roles", dest="admin_roles", help="comma-separated roles that administer it"
        )
        p.add_argument(
            "-c", "--allowed-clusters", dest="allowed_clusters", help="comma-separated cluster names"
        )
    for name, fn, helptext in (("get", cmd_get, "show a tenant"), ("delete", cmd_delete, "delete a tenant")):
        _verb(tsub, name, fn, helptext).add_argument("tenant")
    _verb(tsub, "list", cmd_list, "list the tenants")

    namespaces = sub.add_parser("namespaces", help="namespace permissions (as pulsar-admin namespaces)")
    nsub = namespaces.add_subparsers(dest="namespaces_verb", metavar="VERB")
    p = _verb(nsub, "grant-permission", cmd_grant, "grant a role actions on a namespace")
    p.add_argument("namespace", help="tenant/namespace")
    p.add_argument("--role", required=True)
    p.add_argument("--actions", required=True, help="comma-separated: functions, produce, consume, ...")
    p = _verb(nsub, "revoke-permission", cmd_revoke, "revoke a role's actions on a namespace")
    p.add_argument("namespace", help="tenant/namespace")
    p.add_argument("--role", required=True)
    _verb(nsub, "permissions", cmd_permissions, "show a namespace's grants").add_argument(
        "namespace", help="tenant/namespace"
    )
