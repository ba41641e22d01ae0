"""Admin verbs: ``magnetar functions <verb>`` and ``magnetar functions-worker <verb>``.

They talk to a worker's REST API (``--admin-url``, default the local standalone) with
``pulsar-admin``'s verbs, flag names and output: ``get``, ``status``, ``stats`` and
``list`` print JSON as pulsar-admin does (a table with ``--output table``), the verbs
that change something print pulsar-admin's one-line message ("Created successfully", …),
and errors exit non-zero with one clear line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import aiohttp
import orjson

from engine.cli.function_flags import add_function_flags, overrides_from_args
from engine.cli.http_client import AdminError, add_global_flags, admin_command, call, raise_for_status, target
from engine.cli.progress import Progress
from engine.config import load_config_file, merge_overrides

__all__ = ["AdminError", "add_admin_parsers"]


def _fqfn(args: argparse.Namespace) -> str:
    if args.fqfn:
        parts = args.fqfn.split("/")
        if len(parts) != 3 or not all(parts):
            raise AdminError(f"--fqfn {args.fqfn!r}: expected tenant/namespace/name")
        return args.fqfn
    if not args.name:
        raise AdminError("give --fqfn tenant/namespace/name, or --name (with --tenant/--namespace)")
    return f"{args.tenant or 'public'}/{args.namespace or 'default'}/{args.name}"


def _done(args: argparse.Namespace, message: str, data: Any = None) -> None:
    """pulsar-admin's one-line result, or the worker's JSON answer with ``--output json``.

    The worker's warnings (config fields without effect) go to stderr.
    """
    for warning in data.get("warnings", []) if isinstance(data, dict) else []:
        print(f"magnetar: warning: {warning}", file=sys.stderr)
    if args.output_format == "json":
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(message)


def _emit(
    args: argparse.Namespace,
    data: Any,
    table: list[list[Any]] | None = None,
    headers: list[str] | None = None,
) -> None:
    if args.output_format == "json" or table is None:
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data + b"\n")
        else:
            print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    rows = [[str(c) for c in row] for row in table]
    cols = headers or []
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(cols)]
    # Numbers right-aligned under their header, text left-aligned; no trailing blanks.
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(cols))]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    print(line(cols))
    for row in rows:
        print(line(row))


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return text not in ("nan", "inf", "True", "False")


# -- function verbs ---------------------------------------------------------------------------------------


def _submission(args: argparse.Namespace, fqfn: str | None) -> aiohttp.FormData:
    base = load_config_file(args.function_config_file) if args.function_config_file else {}
    config = merge_overrides(base, overrides_from_args(args))
    if fqfn:
        config["tenant"], config["namespace"], config["name"] = fqfn.split("/")
    form = aiohttp.FormData()
    py = config.pop("py", None)
    if py and not py.startswith(("file://", "http://", "https://", "function://", "sink://", "source://")):
        if not os.path.isfile(py):
            raise AdminError(f"--py {py}: no such file")
        with open(py, "rb") as fh:
            form.add_field(
                "data", fh.read(), filename=os.path.basename(py), content_type="application/octet-stream"
            )
    elif py:
        form.add_field("url", py)
    form.add_field("functionConfig", orjson.dumps(config).decode(), content_type="application/json")
    if getattr(args, "update_auth_data", False):
        form.add_field(
            "updateOptions", orjson.dumps({"updateAuthData": True}).decode(), content_type="application/json"
        )
    return form


def _name_from(args: argparse.Namespace) -> str:
    if args.fqfn or args.name:
        return _fqfn(args)
    base = load_config_file(args.function_config_file) if args.function_config_file else {}
    merged = merge_overrides(base, overrides_from_args(args))
    name = merged.get("name") or (merged.get("className") or "").rsplit(".", 1)[-1]
    if not name:
        raise AdminError("give --name or --fqfn (or a className to infer the name from)")
    return f"{merged.get('tenant', 'public')}/{merged.get('namespace', 'default')}/{name}"


def cmd_create(args: argparse.Namespace) -> None:
    fqfn = _name_from(args)
    out = call(args, "POST", f"/admin/v3/functions/{fqfn}", data=_submission(args, fqfn))
    _done(args, "Created successfully", out)


def cmd_update(args: argparse.Namespace) -> None:
    fqfn = _name_from(args)
    out = call(args, "PUT", f"/admin/v3/functions/{fqfn}", data=_submission(args, fqfn))
    _done(args, "Updated successfully", out)


def cmd_delete(args: argparse.Namespace) -> None:
    fqfn = _fqfn(args)
    out = call(args, "DELETE", f"/admin/v3/functions/{fqfn}")
    _done(args, "Deleted successfully", out)


def cmd_get(args: argparse.Namespace) -> None:
    out = call(args, "GET", f"/admin/v3/functions/{_fqfn(args)}")
    _emit(args, out, [[k, orjson.dumps(v).decode()] for k, v in out.items()], ["FIELD", "VALUE"])


def cmd_list(args: argparse.Namespace) -> None:
    ns = f"{args.tenant or 'public'}/{args.namespace or 'default'}"
    out = call(args, "GET", f"/admin/v3/functions/{ns}")
    if args.output_format is None:  # pulsar-admin prints one name per line
        for name in out:
            print(name)
        return
    if args.output_format == "json":
        _emit(args, out)
        return
    table = []
    for name in out:
        st = call(args, "GET", f"/admin/v3/functions/{ns}/{name}/status")
        table.append([name, f"{st.get('numRunning', 0)}/{st.get('numInstances', 0)}"])
    _emit(args, out, table, [f"FUNCTION (in {ns})", "INSTANCES RUNNING/TOTAL"])


def _instance_path(args: argparse.Namespace, verb: str) -> str:
    fqfn = _fqfn(args)
    if args.instance_id is not None:
        return f"/admin/v3/functions/{fqfn}/{args.instance_id}/{verb}"
    return f"/admin/v3/functions/{fqfn}/{verb}"


def cmd_status(args: argparse.Namespace) -> None:
    out = call(args, "GET", _instance_path(args, "status"))
    items = out["instances"] if "instances" in out else [{"instanceId": args.instance_id, "status": out}]
    table = [
        [
            i["instanceId"],
            i["status"].get("running"),
            i["status"].get("workerId", ""),
            i["status"].get("numReceived", 0),
            i["status"].get("numSuccessfullyProcessed", 0),
            i["status"].get("numUserExceptions", 0),
            i["status"].get("numSystemExceptions", 0),
            i["status"].get("numRestarts", 0),
            i["status"].get("error", ""),
        ]
        for i in items
    ]
    _emit(
        args,
        out,
        table,
        [
            "INSTANCE",
            "RUNNING",
            "WORKER",
            "RECEIVED",
            "PROCESSED",
            "USER ERR",
            "SYS ERR",
            "RESTARTS",
            "ERROR",
        ],
    )


def cmd_stats(args: argparse.Namespace) -> None:
    out = call(args, "GET", _instance_path(args, "stats"))
    items = out.get("instances") or [{"instanceId": args.instance_id, "metrics": out}]
    table = [
        [
            i["instanceId"],
            i["metrics"]["receivedTotal"],
            i["metrics"]["processedSuccessfullyTotal"],
            i["metrics"]["userExceptionsTotal"],
            i["metrics"]["systemExceptionsTotal"],
            f"{i['metrics']['avgProcessLatency']:.3f}",
        ]
        for i in items
    ]
    _emit(args, out, table, ["INSTANCE", "RECEIVED", "PROCESSED", "USER ERR", "SYS ERR", "AVG LATENCY MS"])


def _control(verb: str) -> Any:
    message = {"start": "Started successfully", "stop": "Stopped successfully"}.get(
        verb, "Restarted successfully"
    )

    def run(args: argparse.Namespace) -> None:
        out = call(args, "POST", _instance_path(args, verb))
        _done(args, message, out)

    return run


def cmd_reload(args: argparse.Namespace) -> None:
    call(args, "POST", "/admin/v3/functions/builtins/reload")  # pulsar-admin prints nothing


def cmd_available_functions(args: argparse.Namespace) -> None:
    out = call(args, "GET", "/admin/v3/functions/builtins")
    if args.output_format == "json":
        _emit(args, out)
        return
    for function in out:
        print(function.get("name", ""))
        print(function.get("description", ""))
        print("-" * 28)


def cmd_trigger(args: argparse.Namespace) -> None:
    form = aiohttp.FormData()
    if args.trigger_file:
        with open(args.trigger_file, "rb") as fh:
            form.add_field("dataStream", fh.read(), filename=os.path.basename(args.trigger_file))
    elif args.trigger_value is not None:
        form.add_field("data", args.trigger_value)
    else:
        raise AdminError("give --trigger-value or --trigger-file")
    if args.topic:
        form.add_field("topic", args.topic)
    out = call(args, "POST", f"/admin/v3/functions/{_fqfn(args)}/trigger", data=form)
    if isinstance(out, bytes):
        sys.stdout.write(out.decode(errors="replace") + "\n")
    else:
        _emit(args, out)


def cmd_querystate(args: argparse.Namespace) -> None:
    path = f"/admin/v3/functions/{_fqfn(args)}/state/{args.key}"
    while True:
        out = call(args, "GET", path)
        value = out.get("numberValue", out.get("stringValue", out.get("byteValue")))
        _emit(args, out, [[out["key"], value]], ["KEY", "VALUE"])
        if not args.watch:
            return
        time.sleep(1)


def cmd_putstate(args: argparse.Namespace) -> None:
    try:
        state = orjson.loads(args.state)
    except orjson.JSONDecodeError as exc:
        raise AdminError(f"--state: got {args.state!r}; expected FunctionState JSON ({exc})")
    key = state.get("key")
    if not key:
        raise AdminError("--state: the FunctionState needs a key")
    call(args, "POST", f"/admin/v3/functions/{_fqfn(args)}/state/{key}", json=state)


_CHUNK = 256 * 1024


async def _file_chunks(path: str, progress: Progress) -> AsyncIterator[bytes]:
    """The file in chunks, counting each as it is handed to the connection."""
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            progress.advance(len(chunk))
            yield chunk


def cmd_upload(args: argparse.Namespace) -> None:
    if not os.path.isfile(args.source_file):
        raise AdminError(f"--source-file {args.source_file}: no such file")
    name = os.path.basename(args.source_file)
    with Progress(f"uploading {name}", total=os.path.getsize(args.source_file)) as progress:
        form = aiohttp.FormData()
        form.add_field(
            "data",
            _file_chunks(args.source_file, progress),
            filename=name,
            content_type="application/octet-stream",
        )
        form.add_field("path", args.path or name)
        out = call(args, "POST", "/admin/v3/functions/upload", data=form)
    _done(args, "Uploaded successfully", out)


async def _download(args: argparse.Namespace, path: str, params: dict[str, str], dest: str) -> int:
    where = target(args)
    headers = {"Authorization": f"Bearer {where.token}"} if where.token else {}
    connector = aiohttp.TCPConnector(ssl=where.ssl) if where.ssl is not None else None
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        try:
            async with session.get(where.url + path, params=params, headers=headers) as resp:
                if resp.status >= 400:
                    raise_for_status(resp.status, await resp.read())
                with Progress(f"downloading to {dest}", total=resp.content_length) as progress:
                    with open(dest, "wb") as fh:
                        async for chunk in resp.content.iter_chunked(_CHUNK):
                            fh.write(chunk)
                            progress.advance(len(chunk))
                    return int(progress.done)
        except aiohttp.ClientConnectionError as exc:
            raise AdminError(f"cannot reach {where.url}: {exc}")


def cmd_download(args: argparse.Namespace) -> None:
    if args.path:
        path, params = "/admin/v3/functions/download", {"path": args.path}
    else:
        path, params = f"/admin/v3/functions/{_fqfn(args)}/download", {}
    size = asyncio.run(_download(args, path, params, args.destination_file))
    del size
    print("Downloaded successfully")


# -- worker verbs -----------------------------------------------------------------------------------------


def cmd_get_cluster(args: argparse.Namespace) -> None:
    out = call(args, "GET", "/admin/v2/worker/cluster")
    _emit(
        args, out, [[w["workerId"], w["workerHostname"], w["port"]] for w in out], ["WORKER", "HOST", "PORT"]
    )


def cmd_get_leader(args: argparse.Namespace) -> None:
    out = call(args, "GET", "/admin/v2/worker/cluster/leader")
    _emit(
        args,
        out,
        [[out["workerId"], out["workerHostname"], out["port"], out.get("epoch")]],
        ["LEADER", "HOST", "PORT", "EPOCH"],
    )


def cmd_assignments(args: argparse.Namespace) -> None:
    out = call(args, "GET", "/admin/v2/worker/assignments")
    _emit(args, out, [[w, k] for w, keys in out.items() for k in keys], ["WORKER", "INSTANCE"])


def cmd_rebalance(args: argparse.Namespace) -> None:
    with Progress("rebalancing", unit="instances moved") as progress:
        progress.set_phase("the leader is evening out the instances")
        out = call(args, "PUT", "/admin/v2/worker/rebalance")
        progress.update(out.get("moved", 0))
    _emit(args, out, [[out.get("moved", 0)]], ["INSTANCES MOVED"])


def _drain_target(args: argparse.Namespace) -> str | None:
    """The id of the worker to drain: --worker-id, else the worker --admin-url points at."""
    if args.worker_id:
        return str(args.worker_id)
    want = urlparse(args.admin_url)
    for member in call(args, "GET", "/admin/v2/worker/cluster"):
        if member.get("port") == want.port and member.get("workerHostname") in (want.hostname, "0.0.0.0"):
            return str(member["workerId"])
    return None


def _left_on(args: argparse.Namespace, worker_id: str) -> int:
    return len(call(args, "GET", "/admin/v2/worker/assignments").get(worker_id, []))


def cmd_drain(args: argparse.Namespace) -> None:
    target = _drain_target(args)
    with Progress(f"draining {target or 'this worker'}", unit="instances moved") as progress:
        start = _left_on(args, target) if target else 0
        progress.update(0, start or None)
        progress.set_phase(f"{start} instance(s) to move" if target else "asking the leader")
        if args.worker_id:
            out = call(args, "PUT", "/admin/v2/worker/leader/drain", params={"workerId": args.worker_id})
        else:
            out = call(args, "PUT", "/admin/v2/worker/drain")
        left = _left_on(args, target) if target else 0
        deadline = time.monotonic() + args.timeout
        while left and time.monotonic() < deadline:
            progress.update(start - left)
            time.sleep(0.2)  # the leader reassigns in the background; poll its table
            left = _left_on(args, target) if target else 0
        progress.update(start - left)
        progress.set_phase(str(out.get("status", "")))
    _emit(args, out, [[target or "(this worker)", out.get("status")]], ["WORKER", "DRAIN"])


def cmd_monitoring_metrics(args: argparse.Namespace) -> None:
    out = call(args, "GET", "/admin/v2/worker-stats/metrics")
    _emit(args, out, [[k, v] for item in out for k, v in item["metrics"].items()], ["METRIC", "VALUE"])


def cmd_function_stats(args: argparse.Namespace) -> None:
    out = call(args, "GET", "/admin/v2/worker-stats/functionsmetrics")
    _emit(
        args,
        out,
        [
            [
                i["name"],
                i["instanceId"],
                i["metrics"]["receivedTotal"],
                i["metrics"]["processedSuccessfullyTotal"],
            ]
            for i in out
        ],
        ["FUNCTION", "INSTANCE", "RECEIVED", "PROCESSED"],
    )


# -- parsers ------------------------------------------------------------------------------


def _admin_flags(p: argparse.ArgumentParser, output_flag: bool = True, default: str | None = "table") -> None:
    add_global_flags(p)
    # create/update use -o/--output for the output topic, as pulsar-admin does.
    flags = ["--output", "--output-format"] if output_flag else ["--output-format"]
    p.add_argument(
        *flags,
        dest="output_format",
        choices=["table", "json"],
        default=default,
        help=f"table or json (default {default or 'as pulsar-admin prints it'})",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the worker")


def _name_flags(p: argparse.ArgumentParser, instance: bool = False) -> None:
    p.add_argument("--fqfn", help="tenant/namespace/name")
    p.add_argument("--tenant", help="tenant (default public)")
    p.add_argument("--namespace", help="namespace (default default)")
    p.add_argument("--name", help="function name")
    if instance:
        p.add_argument(
            "--instance-id", "--instanceId", dest="instance_id", type=int, help="one instance (default: all)"
        )


def _wrap(fn: Any) -> Any:
    return admin_command(fn)


def add_admin_parsers(functions: argparse._SubParsersAction, sub: argparse._SubParsersAction) -> None:
    """Add the admin verbs under ``functions`` and the ``functions-worker`` command under ``sub``."""
    for verb, fn, helptext in (
        ("create", cmd_create, "register a function"),
        ("update", cmd_update, "update a function's code or config"),
    ):
        p = functions.add_parser(verb, help=helptext)
        add_function_flags(p)
        _admin_flags(p, output_flag=False)
        if verb == "update":
            p.add_argument(
                "--update-auth-data",
                dest="update_auth_data",
                action="store_true",
                help="also update the function's auth data",
            )
        p.set_defaults(handler=_wrap(fn))
    # (verb, aliases, handler, help, takes --instance-id, default output)
    simple: tuple[tuple[str, list[str], Any, str, bool, str], ...] = (
        ("delete", [], cmd_delete, "deregister a function", False, "table"),
        ("get", [], cmd_get, "show a function's config", False, "json"),
        ("status", ["getstatus"], cmd_status, "instance status", True, "json"),
        ("stats", [], cmd_stats, "instance statistics", True, "json"),
        ("start", [], _control("start"), "start instances (persisted)", True, "table"),
        ("stop", [], _control("stop"), "stop instances (persisted)", True, "table"),
        ("restart", [], _control("restart"), "restart instances", True, "table"),
    )
    for verb, aliases, fn, helptext, inst, default in simple:
        p = functions.add_parser(verb, aliases=aliases, help=helptext)
        _name_flags(p, inst)
        _admin_flags(p, default=default)
        p.set_defaults(handler=_wrap(fn))
    p = functions.add_parser("list", help="list the functions of a namespace, one name per line")
    p.add_argument("--tenant", help="tenant (default public)")
    p.add_argument("--namespace", help="namespace (default default)")
    _admin_flags(p, default=None)
    p.set_defaults(handler=_wrap(cmd_list))
    for verb, fn, helptext in (
        ("reload", cmd_reload, "reload the built-in functions"),
        ("available-functions", cmd_available_functions, "list the built-in functions"),
    ):
        p = functions.add_parser(verb, help=helptext)
        _admin_flags(p)
        p.set_defaults(handler=_wrap(fn))
    p = functions.add_parser("trigger", help="send one value through a function and print its output")
    _name_flags(p)
    p.add_argument("--trigger-value", "--triggerValue", dest="trigger_value")
    p.add_argument("--trigger-file", "--triggerFile", dest="trigger_file")
    p.add_argument("--topic", help="the input topic to send to (default: the first input)")
    _admin_flags(p)
    p.set_defaults(handler=_wrap(cmd_trigger))
    p = functions.add_parser("querystate", help="read a state key")
    _name_flags(p)
    p.add_argument("-k", "--key", required=True)
    p.add_argument("-w", "--watch", action="store_true", help="poll once a second")
    _admin_flags(p, default="json")
    p.set_defaults(handler=_wrap(cmd_querystate))
    p = functions.add_parser("putstate", help="write a state key")
    _name_flags(p)
    p.add_argument(
        "-s", "--state", required=True, help="FunctionState JSON (key, stringValue/numberValue/byteValue)"
    )
    _admin_flags(p)
    p.set_defaults(handler=_wrap(cmd_putstate))
    p = functions.add_parser("upload", help="store a package in the cluster")
    p.add_argument("--source-file", "--sourceFile", dest="source_file", required=True)
    p.add_argument("--path")
    _admin_flags(p)
    p.set_defaults(handler=_wrap(cmd_upload))
    p = functions.add_parser("download", help="fetch a package")
    _name_flags(p)
    p.add_argument("--path")
    p.add_argument("--destination-file", "--destinationFile", dest="destination_file", required=True)
    _admin_flags(p)
    p.set_defaults(handler=_wrap(cmd_download))

    fw = sub.add_parser("functions-worker", help="cluster commands (as pulsar-admin functions-worker)")
    wsub = fw.add_subparsers(dest="worker_verb", metavar="VERB")
    for verb, fn, helptext in (
        ("get-cluster", cmd_get_cluster, "list the workers"),
        ("get-cluster-leader", cmd_get_leader, "show the leader"),
        ("get-function-assignments", cmd_assignments, "show which worker runs which instance"),
        ("rebalance", cmd_rebalance, "even out instances across workers"),
        ("monitoring-metrics", cmd_monitoring_metrics, "worker metrics"),
        ("function-stats", cmd_function_stats, "statistics of this worker's instances"),
    ):
        p = wsub.add_parser(verb, help=helptext)
        _admin_flags(p)
        p.set_defaults(handler=_wrap(fn))
    p = wsub.add_parser("drain", help="move every instance off a worker")
    p.add_argument("--worker-id", help="the worker to drain (default: the one --admin-url points at)")
    _admin_flags(p)
    p.set_defaults(handler=_wrap(cmd_drain))
