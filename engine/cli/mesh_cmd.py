"""``magnetar mesh`` (alias ``function-mesh``): a pipeline of functions, sources and sinks as one unit.

``create|update -f FILE`` send the mesh (PIP-66 YAML or a ``FunctionMesh`` resource) with
the packages its members name by file (relative paths are taken from the file's
directory); ``get|status|delete`` take ``-f FILE`` or ``--tenant/--namespace/--name``;
``list`` lists a namespace's meshes; ``graph NAME`` draws the pipeline (``--format
text|dot|svg``); ``manifests -f FILE`` writes the Kubernetes manifests, offline.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import yaml

from engine.cli.http_client import AdminError, add_global_flags, admin_command, call
from engine.cli.mesh_progress import package_part, report_stored, wait_until_ready
from engine.config.errors import ConfigError

__all__ = ["add_mesh_parsers"]


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError.single("-f", path, f"a readable mesh file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError.single("-f", path, f"valid YAML or JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError.single("-f", path, "a mapping: PIP-66 YAML or a FunctionMesh resource")
    return doc


def _identity(args: argparse.Namespace) -> str:
    if getattr(args, "file", None):
        from engine.mesh.forms import parse_mesh

        spec = parse_mesh(_load(args.file), args.tenant, args.namespace)
        return spec.fqmn
    name = getattr(args, "mesh_name", None) or args.name
    if not name:
        raise AdminError("give -f FILE, or --name (with --tenant/--namespace)")
    return f"{args.tenant or 'public'}/{args.namespace or 'default'}/{name}"


def _submission(args: argparse.Namespace) -> tuple[str, aiohttp.FormData, list[str]]:
    """The mesh's identity, the multipart body and the local graph's warnings."""
    from engine.mesh.plan import plan_mesh

    if not args.file:
        raise AdminError("-f FILE: the mesh file is required")
    doc = _load(args.file)
    plan = plan_mesh(doc, args.tenant, args.namespace)  # the same checks as the worker's, before sending
    form = aiohttp.FormData()
    form.add_field("mesh", orjson.dumps(doc).decode(), content_type="application/json")
    here = os.path.dirname(os.path.abspath(args.file))
    users: dict[str, tuple[str, list[str]]] = {}  # base name -> (path, members using it)
    for member in plan.spec.members:
        package = member.package
        if not package or "://" in package:
            continue
        path = package if os.path.isabs(package) else os.path.join(here, package)
        _path, names = users.setdefault(os.path.basename(package), (path, []))
        names.append(f"{member.kind.value} {member.name}")
    for path, members in users.values():
        package_part(form, path, members)
    return plan.spec.fqmn, form, plan.warnings


def _print(data: Any) -> None:
    if isinstance(data, (bytes, str)):
        text = data.decode() if isinstance(data, bytes) else data
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    elif data is not None:
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _handler(run: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    return admin_command(run, _print)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"magnetar: warning: {warning}", file=sys.stderr)


def _after_write(args: argparse.Namespace, fqmn: str, answer: dict[str, Any], done: str) -> dict[str, Any]:
    """Report what was stored, then (unless ``--no-wait``) the instances starting."""
    _warn(answer.get("warnings", []))
    report_stored(fqmn, answer)
    if not args.no_wait and not wait_until_ready(args, fqmn, args.wait_timeout):
        _warn([f"mesh {fqmn} is stored but not ready after {args.wait_timeout:g}s; see mesh status"])
    print(f"{done} mesh {fqmn}", file=sys.stderr)
    return answer


def cmd_create(args: argparse.Namespace) -> Any:
    fqmn, form, _warnings = _submission(args)
    return _after_write(args, fqmn, call(args, "POST", f"/admin/v3/meshes/{fqmn}", data=form), "Created")


def cmd_update(args: argparse.Namespace) -> Any:
    fqmn, form, _warnings = _submission(args)
    return _after_write(args, fqmn, call(args, "PUT", f"/admin/v3/meshes/{fqmn}", data=form), "Updated")


def cmd_delete(args: argparse.Namespace) -> Any:
    fqmn = _identity(args)
    answer = call(args, "DELETE", f"/admin/v3/meshes/{fqmn}")
    print(f"Deleted mesh {fqmn}", file=sys.stderr)
    return answer


def cmd_get(args: argparse.Namespace) -> Any:
    return call(args, "GET", f"/admin/v3/meshes/{_identity(args)}")


def cmd_status(args: argparse.Namespace) -> Any:
    return call(args, "GET", f"/admin/v3/meshes/{_identity(args)}/status")


def cmd_list(args: argparse.Namespace) -> Any:
    return call(args, "GET", f"/admin/v3/meshes/{args.tenant or 'public'}/{args.namespace or 'default'}")


def cmd_graph(args: argparse.Namespace) -> Any:
    if args.file and not args.mesh_name:
        from engine.mesh.plan import plan_mesh
        from engine.mesh.render import render

        plan = plan_mesh(_load(args.file), args.tenant, args.namespace)
        return render(plan.spec.fqmn, plan.stored_graph, args.format)
    return call(args, "GET", f"/admin/v3/meshes/{_identity(args)}/graph", params={"format": args.format})


def cmd_manifests(args: argparse.Namespace) -> Any:
    from engine.mesh.manifests import manifests_yaml

    if not args.file:
        raise AdminError("-f FILE: the mesh file is required")
    text = manifests_yaml(
        _load(args.file),
        args.tenant,
        args.namespace,
        image=args.image,
        broker_url=args.broker_url,
        state_storage_url=args.state_storage_url,
        base_dir=os.path.dirname(os.path.abspath(args.file)),
    )
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"Wrote {args.output}", file=sys.stderr)
        return None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected zero or more seconds")
    return value


def _flags(p: argparse.ArgumentParser, file_required: bool = False) -> None:
    add_global_flags(p)
    p.add_argument("-f", "--file", dest="file", required=file_required, help="the mesh file (YAML or JSON)")
    p.add_argument("--tenant", help="tenant (default: the file's, else public)")
    p.add_argument("--namespace", help="namespace (default: the file's, else default)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the worker")


def add_mesh_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``magnetar mesh`` and its alias ``magnetar function-mesh``."""
    mesh = sub.add_parser(
        "mesh", aliases=["function-mesh"], help="Function Mesh: pipelines deployed as one unit (PIP-66)"
    )
    verbs = mesh.add_subparsers(dest="verb", metavar="VERB")
    for verb, fn, text in (
        ("create", cmd_create, "create a mesh and all its members"),
        ("update", cmd_update, "update a mesh: add, change and remove members in one write"),
    ):
        p = verbs.add_parser(verb, help=text)
        _flags(p, file_required=True)
        p.add_argument(
            "--no-wait", action="store_true", help="return once stored, without waiting for the instances"
        )
        p.add_argument(
            "--wait-timeout",
            type=_seconds,
            default=60.0,
            help="seconds to wait for every member to be ready (default 60)",
        )
        p.set_defaults(handler=_handler(fn))
    for verb, fn, text in (
        ("delete", cmd_delete, "delete a mesh with every member"),
        ("get", cmd_get, "the mesh's document and members"),
        ("status", cmd_status, "MeshReady, each member's instances, and the backlog between them"),
    ):
        p = verbs.add_parser(verb, help=text)
        _flags(p)
        p.add_argument("--name", help="the mesh's name (instead of -f)")
        p.set_defaults(handler=_handler(fn))
    p = verbs.add_parser("list", help="the meshes of a namespace")
    _flags(p)
    p.set_defaults(handler=_handler(cmd_list))
    p = verbs.add_parser("graph", help="draw the pipeline (text, dot or svg)")
    p.add_argument("mesh_name", nargs="?", metavar="NAME", help="the mesh's name (or -f FILE, offline)")
    _flags(p)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument(
        "--format", choices=["text", "dot", "svg"], default="text", help="text (default), dot or svg"
    )
    p.set_defaults(handler=_handler(cmd_graph))
    p = verbs.add_parser("manifests", help="write Kubernetes manifests for the mesh (offline)")
    _flags(p, file_required=True)
    p.add_argument("--image", default=None, help="the container image with Magnetar installed")
    p.add_argument(
        "--broker-url", default=None, help="the broker the instances use (pulsar://pulsar-broker:6650)"
    )
    p.add_argument(
        "--state-storage-url", default=None, help="the state store the instances use (postgresql://...)"
    )
    p.add_argument("-o", "--output", help="write to this file (0600) instead of stdout")
    p.set_defaults(handler=_handler(cmd_manifests))
