"""``magnetar sources|sinks`` verbs that go to a worker over REST (create, update, get, list, …)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from engine.cli.http_client import AdminError, add_global_flags, admin_command, call

__all__ = ["add_connector_admin_parsers"]


def _admin_flags(p: argparse.ArgumentParser) -> None:
    add_global_flags(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the worker")


def _identity_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", help="tenant (default public)")
    p.add_argument("--namespace", help="namespace (default default)")
    p.add_argument("--name", help="the connector's name")


def _fqfn(args: argparse.Namespace, kind: str) -> str:
    if not args.name:
        raise AdminError(f"--name: required, the {kind}'s name")
    return f"{args.tenant or 'public'}/{args.namespace or 'default'}/{args.name}"


def _print(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _show(result: Any) -> None:
    if result is not None:
        _print(result)


def _handler(run: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    return admin_command(run, _show)


def _submit(kind: str, update: bool = False) -> Callable[[argparse.Namespace], Any]:
    """``create`` (POST) or ``update`` (PUT, only the fields given) of a source or sink."""

    def run(args: argparse.Namespace) -> Any:
        from engine.cli.connectors_cmd import config_from_args

        args.connector_kind = kind
        config = config_from_args(args)
        archive = config.pop("archive", None)
        if isinstance(archive, str) and archive.startswith("builtin://"):
            config[f"{kind}Type"] = archive.removeprefix("builtin://")
            archive = None
        config.setdefault("tenant", "public")
        config.setdefault("namespace", "default")
        if not config.get("name"):
            raise AdminError("--name: required, the connector's name")
        form = aiohttp.FormData()
        transform = config.get("transformFunction") if kind == "sink" else None
        if isinstance(transform, str) and "://" not in transform:
            # A local file goes along with the sink: the worker stores it for every worker.
            content = _read(transform, "--transform-function")
            config["transformFunction"] = os.path.basename(transform)
            form.add_field("transformFunction", content, filename=os.path.basename(transform))
        form.add_field(f"{kind}Config", orjson.dumps(config).decode(), content_type="application/json")
        if archive and "://" in archive:
            form.add_field("url", archive)  # a package URL the worker resolves, as for functions' --py
        elif archive:
            form.add_field("data", _read(archive, "--archive"), filename=os.path.basename(archive))
        fqfn = f"{config['tenant']}/{config['namespace']}/{config['name']}"
        call(args, "PUT" if update else "POST", f"/admin/v3/{kind}s/{fqfn}", data=form)
        print(f"{'Updated' if update else 'Created'} {kind} {fqfn}", file=sys.stderr)
        return None

    return run


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise AdminError(f"{flag} {path!r}: {exc.strerror}") from None


def _simple(kind: str, method: str, suffix: str = "") -> Callable[[argparse.Namespace], Any]:
    def run(args: argparse.Namespace) -> Any:
        return call(args, method, f"/admin/v3/{kind}s/{_fqfn(args, kind)}{suffix}")

    return run


def _reload(kind: str) -> Callable[[argparse.Namespace], Any]:
    path = (
        "/admin/v3/sources/reloadBuiltInSources" if kind == "source" else "/admin/v3/sinks/reloadBuiltInSinks"
    )

    def run(args: argparse.Namespace) -> None:
        call(args, "POST", path)  # pulsar-admin prints nothing for a reload

    return run


def _list(kind: str) -> Callable[[argparse.Namespace], Any]:
    def run(args: argparse.Namespace) -> Any:
        return call(args, "GET", f"/admin/v3/{kind}s/{args.tenant or 'public'}/{args.namespace or 'default'}")

    return run


def add_connector_admin_parsers(
    sub: argparse._SubParsersAction, kind: str, config_flags: Callable[[argparse.ArgumentParser, str], None]
) -> None:
    """Add the admin verbs under ``magnetar <kind>s``."""
    p = sub.add_parser("create", help=f"create a {kind} on the workers")
    config_flags(p, kind)
    _admin_flags(p)
    p.set_defaults(handler=_handler(_submit(kind)))
    p = sub.add_parser("update", help=f"change a {kind}'s config or code; it resumes where it stopped")
    config_flags(p, kind)
    _admin_flags(p)
    p.set_defaults(handler=_handler(_submit(kind, update=True)))
    for verb, method, suffix, text in (
        ("get", "GET", "", f"the {kind}'s config"),
        ("status", "GET", "/status", f"the {kind}'s status, per instance"),
        ("delete", "DELETE", "", f"delete the {kind}"),
        ("stats", "GET", "/stats", f"the {kind}'s stats, per instance"),
        ("stop", "POST", "/stop", f"stop every instance of the {kind}"),
        ("start", "POST", "/start", f"start every instance of the {kind}"),
        ("restart", "POST", "/restart", f"restart every instance of the {kind}"),
    ):
        q = sub.add_parser(verb, help=text)
        _identity_flags(q)
        _admin_flags(q)
        q.set_defaults(handler=_handler(_simple(kind, method, suffix)))
    q = sub.add_parser("reload", help=f"reload the built-in {kind}s")
    _admin_flags(q)
    q.set_defaults(handler=_handler(_reload(kind)))
    q = sub.add_parser("list", help=f"the {kind}s of a namespace")
    _identity_flags(q)
    _admin_flags(q)
    q.set_defaults(handler=_handler(_list(kind)))
