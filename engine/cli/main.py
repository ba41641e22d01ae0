"""The ``magnetar`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from engine import __version__
from engine.cli.localrun_cmd import add_localrun_parser
from engine.cli.startup import StartupError, print_start_failure
from engine.config.errors import ConfigError
from engine.function.errors import FunctionLoadError
from engine.security.errors import SettingError

__all__ = ["build_parser", "main"]


def build_parser(localrun_only: bool = False) -> argparse.ArgumentParser:
    """The full argument parser (with ``localrun_only``, just ``functions localrun``).

    ``localrun`` is what users time: its parser alone spares it importing the admin client,
    the REST server and the worker (about a second of CPU at every start).
    """
    parser = argparse.ArgumentParser(prog="magnetar", description="Run Pulsar Functions written in Python.")
    parser.add_argument("--version", action="version", version=f"magnetar {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("MAGNETAR_LOG_LEVEL", "WARNING"),
        help="DEBUG, INFO, WARNING (default; or $MAGNETAR_LOG_LEVEL) or ERROR",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure to start (also after the verb)"
    )
    if localrun_only:
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        functions = sub.add_parser("functions", help="function commands (as pulsar-admin functions)")
        add_localrun_parser(functions.add_subparsers(dest="verb", metavar="VERB"))
        return parser
    from engine.cli.admin_cmd import add_admin_parsers
    from engine.cli.connectors_cmd import add_connector_parsers
    from engine.cli.demo_cmd import add_demo_parser
    from engine.cli.http_client import add_global_flags
    from engine.cli.mesh_cmd import add_mesh_parsers
    from engine.cli.packages_cmd import add_packages_parser
    from engine.cli.tenants_cmd import add_tenant_parsers
    from engine.cli.tokens_cmd import add_tokens_parser
    from engine.cli.worker_cmd import add_worker_parsers

    # pulsar-admin's global options, accepted here (before the verb) and after it.
    add_global_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    functions = sub.add_parser("functions", help="function commands (as pulsar-admin functions)")
    fsub = functions.add_subparsers(dest="verb", metavar="VERB")
    add_localrun_parser(fsub)
    add_admin_parsers(fsub, sub)
    add_worker_parsers(sub)
    add_connector_parsers(sub)
    add_mesh_parsers(sub)
    add_packages_parser(sub)
    add_demo_parser(sub)
    add_tokens_parser(sub)
    add_tenant_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (also used by ``python -m engine``)."""
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(localrun_only=words[:2] == ["functions", "localrun"])
    args = parser.parse_args(argv)
    # Everything Magnetar writes (state, packages, secrets, keys, launch files) is its owner's alone.
    os.umask(0o077)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args))
    except ConfigError as exc:  # one line: every problem, each naming its field
        print(f"magnetar: invalid function config: {'; '.join(map(str, exc.problems))}", file=sys.stderr)
        return 2
    except SettingError as exc:
        print(f"magnetar: {exc}", file=sys.stderr)
        return 2
    except FunctionLoadError as exc:
        print(f"magnetar: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:  # one line naming the cause; --debug adds the traceback
        print_start_failure(exc, bool(getattr(args, "debug", False)), sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
