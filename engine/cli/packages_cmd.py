"""``magnetar packages <verb>``: package management with ``pulsar-admin packages``' verbs and output."""

from __future__ import annotations

import argparse
import os
from typing import Any

import aiohttp
import orjson

from engine.cli.http_client import AdminError, add_global_flags, admin_command, call
from engine.packages.names import PackageName, parse_package_name

__all__ = ["add_packages_parser"]


def _name(text: str, need_version: bool = True) -> PackageName:
    try:
        return parse_package_name(text, need_version)
    except ValueError as exc:
        raise AdminError(str(exc))


def _path(name: PackageName) -> str:
    base = f"/admin/v3/packages/{name.type}/{name.tenant}/{name.namespace}/{name.name}"
    return base if name.version is None else f"{base}/{name.version}"


def _properties(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AdminError(f"--properties/-P: got {item!r}; expected key=value")
        out[key] = value
    return out


def _print_json(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def cmd_upload(args: argparse.Namespace) -> None:
    name = _name(args.package)
    if not os.path.isfile(args.path):
        raise AdminError(f"--path {args.path}: no such file")
    meta = {
        "description": args.description,
        "contact": args.contact,
        "properties": _properties(args.properties),
    }
    form = aiohttp.FormData()
    with open(args.path, "rb") as fh:
        form.add_field("file", fh.read(), filename=os.path.basename(args.path))
    form.add_field("metadata", orjson.dumps(meta).decode(), content_type="application/json")
    call(args, "POST", _path(name), data=form)
    print(f"The package '{args.package}' uploaded from path '{args.path}' successfully")


def cmd_download(args: argparse.Namespace) -> None:
    name = _name(args.package)
    data = call(args, "GET", _path(name))
    with open(args.path, "wb") as fh:
        fh.write(data if isinstance(data, bytes) else orjson.dumps(data))
    print(f"The package '{args.package}' downloaded to path '{args.path}' successfully")


def cmd_delete(args: argparse.Namespace) -> None:
    call(args, "DELETE", _path(_name(args.package)))
    print(f"The package '{args.package}' deleted successfully")


def cmd_get_metadata(args: argparse.Namespace) -> None:
    _print_json(call(args, "GET", _path(_name(args.package)) + "/metadata"))


def cmd_update_metadata(args: argparse.Namespace) -> None:
    meta = {
        "description": args.description,
        "contact": args.contact,
        "properties": _properties(args.properties),
    }
    call(args, "PUT", _path(_name(args.package)) + "/metadata", json=meta)
    print(f"The metadata of the package '{args.package}' updated successfully")


def cmd_list_versions(args: argparse.Namespace) -> None:
    _print_json(call(args, "GET", _path(_name(args.package, need_version=False))))


def cmd_list(args: argparse.Namespace) -> None:
    parts = args.namespace.split("/")
    if len(parts) != 2 or not all(parts):
        raise AdminError(f"namespace: got {args.namespace!r}; expected tenant/namespace")
    _print_json(call(args, "GET", f"/admin/v3/packages/{args.type}/{parts[0]}/{parts[1]}"))


def _common(p: argparse.ArgumentParser) -> None:
    add_global_flags(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the worker")


def _metadata_flags(p: argparse.ArgumentParser, short: bool) -> None:
    p.add_argument(*(["-d"] if short else []), "--description", required=True, help="what the package is")
    p.add_argument(*(["-c"] if short else []), "--contact", help="who to contact about it")
    p.add_argument("-P", "--properties", action="append", metavar="KEY=VALUE", help="a property (repeatable)")


def _wrap(fn: Any) -> Any:
    return admin_command(fn)


def add_packages_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``magnetar packages`` and its verbs."""
    packages = sub.add_parser("packages", help="package management (as pulsar-admin packages)")
    psub = packages.add_subparsers(dest="packages_verb", metavar="VERB")
    name_help = "type://tenant/namespace/name@version (type: function, sink or source)"

    p = psub.add_parser("upload", help="upload a package")
    p.add_argument("package", help=name_help)
    p.add_argument("--path", required=True, help="the file to upload")
    _metadata_flags(p, short=False)
    p.set_defaults(handler=_wrap(cmd_upload))

    p = psub.add_parser("download", help="download a package")
    p.add_argument("package", help=name_help)
    p.add_argument("--path", required=True, help="where to write it")
    p.set_defaults(handler=_wrap(cmd_download))

    p = psub.add_parser("update-metadata", help="replace a package's metadata")
    p.add_argument("package", help=name_help)
    _metadata_flags(p, short=True)
    p.set_defaults(handler=_wrap(cmd_update_metadata))

    for verb, fn, helptext in (
        ("get-metadata", cmd_get_metadata, "show a package's metadata"),
        ("delete", cmd_delete, "delete a package version"),
    ):
        p = psub.add_parser(verb, help=helptext)
        p.add_argument("package", help=name_help)
        p.set_defaults(handler=_wrap(fn))

    p = psub.add_parser("list-versions", help="list the versions of a package")
    p.add_argument("package", help="type://tenant/namespace/name")
    p.set_defaults(handler=_wrap(cmd_list_versions))

    p = psub.add_parser("list", help="list the packages of one type in a namespace")
    p.add_argument("--type", required=True, choices=["function", "sink", "source"], help="package type")
    p.add_argument("namespace", help="tenant/namespace")
    p.set_defaults(handler=_wrap(cmd_list))

    for action in psub.choices.values():
        _common(action)
