"""``magnetar sources|sinks localrun|available-sources|available-sinks``: Pulsar IO from the command line.

The flags are pulsar-admin's. ``--source-config-file`` / ``--sink-config-file`` is a
YAML (or JSON) SourceConfig / SinkConfig; flags given on the command line win over it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any

import orjson
import yaml

from engine.cli.localrun_cmd import add_broker_flags, broker_options
from engine.config.errors import ConfigError
from engine.instance.options import InstanceOptions
from engine.io.connector_config import connector_of, sink_spec, source_spec
from engine.io.connectors import BUILTIN_SINKS, BUILTIN_SOURCES
from engine.io.runner import ConnectorRunner
from engine.io.transform import transform_of
from engine.runtime.localrun import LocalRunOptions

__all__ = ["add_connector_parsers", "build_runner", "config_from_args"]

_GUARANTEES = ["ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE"]


def _json_flag(text: str, flag: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError.single(flag, text, f"a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError.single(flag, text, "a JSON object")
    return value


def _config_file(path: str, flag: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError.single(flag, path, f"a readable YAML file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError.single(flag, path, f"valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError.single(flag, path, "a YAML mapping of SourceConfig/SinkConfig keys")
    return data


def _common_flags(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--tenant", help="tenant (default public)")
    p.add_argument("--namespace", help="namespace (default default)")
    p.add_argument("--name", help=f"the {kind}'s name")
    p.add_argument(f"--{kind}-type", dest="connector_type", help=f"a built-in {kind} (see available-{kind}s)")
    p.add_argument("--archive", "--py", dest="archive", help=f"your {kind}'s .py, .zip or .whl")
    p.add_argument("--classname", "--className", dest="classname", help=f"module.Class of your {kind}")
    p.add_argument(
        "--processing-guarantees",
        "--processingGuarantees",
        dest="processing_guarantees",
        choices=_GUARANTEES,
        help="ATLEAST_ONCE (default), ATMOST_ONCE or EFFECTIVELY_ONCE",
    )
    p.add_argument("--parallelism", type=int, help="instances to run (default 1)")
    p.add_argument(
        "--schema-type",
        "--schemaType",
        dest="schema_type",
        help="BYTES, STRING or JSON" + (", or AVRO (by the writer's schema)" if kind == "sink" else ""),
    )
    p.add_argument("--serde-classname", "--serdeClassName", dest="serde_classname", help="a SerDe class")
    p.add_argument("--secrets", help="JSON map of secret names to provider paths")
    p.add_argument("--log-topic", help="topic the connector's log lines go to")
    if kind == "source":
        _source_flags(p)
    else:
        _sink_flags(p)


def _runtime_flags(p: argparse.ArgumentParser) -> None:
    add_broker_flags(p)
    p.add_argument("--data-dir", default="./magnetar-data", help="broker data, state and package cache")
    p.add_argument(
        "--state-storage-url",
        "--state-storage-service-url",
        dest="state_storage_url",
        help="sqlite:///path or postgresql://user@host/db (default: state.db in the data dir)",
    )
    p.add_argument("--instance-id-offset", type=int, default=0, help="first instance id")
    p.add_argument("--secrets-provider-classname", help="env (default), file, cleartext, or a class path")
    p.add_argument("--secrets-provider-config", help="JSON config for the secrets provider")
    p.add_argument("--hotpath", choices=["native", "pure"], help="hot-path twin (default: native if built)")
    p.add_argument("--batch-max-messages", type=int, default=1000, help="messages per received batch")
    p.add_argument("--batch-timeout-ms", type=int, default=2, help="wait this long to fill a batch")
    p.add_argument(
        "--status-interval", type=float, default=0.0, help="print the status every N seconds (0: never)"
    )


def _source_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--destination-topic-name", "--destinationTopicName", dest="destination", help="topic to publish to"
    )
    p.add_argument("--source-config", "--sourceConfig", dest="connector_config", help="JSON connector config")
    p.add_argument(
        "--source-config-file", "--sourceConfigFile", dest="config_file", help="YAML SourceConfig file"
    )
    p.set_defaults(connector_kind="source")


def _add_source_localrun(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("localrun", help="run a source in this process")
    _common_flags(p, "source")
    _runtime_flags(p)
    p.set_defaults(handler=_run_localrun)


def _sink_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--inputs", help="comma-separated input topics")
    p.add_argument("--topics-pattern", "--topicsPattern", dest="topics_pattern", help="input topics regex")
    p.add_argument("--sink-config", "--sinkConfig", dest="connector_config", help="JSON connector config")
    p.add_argument("--sink-config-file", "--sinkConfigFile", dest="config_file", help="YAML SinkConfig file")
    p.add_argument(
        "--retain-ordering", "--retainOrdering", dest="retain_ordering", action="store_true", default=None
    )
    p.add_argument("--auto-ack", "--autoAck", dest="auto_ack", type=_boolean, help="true (default) or false")
    p.add_argument("--timeout-ms", "--timeoutMs", dest="timeout_ms", type=int, help="redelivery timeout")
    p.add_argument(
        "--max-redeliver-count",
        "--maxRedeliverCount",
        dest="max_redeliver_count",
        type=int,
        help="retries of a failed input before it is dead-lettered",
    )
    p.add_argument("--dead-letter-topic", "--deadLetterTopic", dest="dead_letter_topic")
    p.add_argument("--subs-name", "--subsName", dest="subs_name", help="subscription name")
    p.add_argument("--subs-position", "--subsPosition", dest="subs_position", choices=["Latest", "Earliest"])
    p.add_argument(
        "--transform-function",
        "--transformFunction",
        dest="transform_function",
        help="the .py, .zip or .whl of a function applied to each record before the sink writes it",
    )
    p.add_argument(
        "--transform-function-classname",
        "--transformFunctionClassName",
        dest="transform_function_classname",
        help="module.Class (or module.function) of the transform function",
    )
    p.add_argument(
        "--transform-function-config",
        "--transformFunctionConfig",
        dest="transform_function_config",
        help="JSON user config of the transform function",
    )
    p.set_defaults(connector_kind="sink")


def _add_sink_localrun(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("localrun", help="run a sink in this process")
    _common_flags(p, "sink")
    _runtime_flags(p)
    p.add_argument(
        "--negative-ack-redelivery-delay-ms",
        type=int,
        default=1000,
        help="delay before a failed input is redelivered (timeoutMs wins when set)",
    )
    p.set_defaults(handler=_run_localrun)


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _package_path(path: str | None) -> str | None:
    """A local package path made absolute (the worker reads it where the CLI ran)."""
    if not path or "://" in path:
        return path
    return os.path.abspath(path)


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The SourceConfig / SinkConfig mapping: the config file, then the flags given."""
    kind = args.connector_kind
    config: dict[str, Any] = {}
    if args.config_file:
        config = _config_file(args.config_file, f"--{kind}-config-file")
    flags: dict[str, Any] = {
        "tenant": args.tenant,
        "namespace": args.namespace,
        "name": args.name,
        f"{kind}Type": args.connector_type,
        "archive": args.archive,
        "className": args.classname,
        "processingGuarantees": args.processing_guarantees,
        "parallelism": args.parallelism,
        "schemaType": args.schema_type,
        "serdeClassName": args.serde_classname,
        "logTopic": args.log_topic,
    }
    if args.secrets:
        flags["secrets"] = _json_flag(args.secrets, "--secrets")
    if kind == "source":
        flags["topicName"] = args.destination
    else:
        flags.update(
            inputs=args.inputs,
            topicsPattern=args.topics_pattern,
            retainOrdering=args.retain_ordering,
            autoAck=args.auto_ack,
            timeoutMs=args.timeout_ms,
            maxMessageRetries=args.max_redeliver_count,
            deadLetterTopic=args.dead_letter_topic,
            sourceSubscriptionName=args.subs_name,
            sourceSubscriptionPosition=args.subs_position,
            transformFunction=_package_path(args.transform_function),
            transformFunctionClassName=args.transform_function_classname,
            transformFunctionConfig=args.transform_function_config,
        )
    config.update({k: v for k, v in flags.items() if v is not None})
    if args.connector_config:
        config["configs"] = {
            **(config.get("configs") or {}),
            **_json_flag(args.connector_config, f"--{kind}-config"),
        }
    return config


def build_runner(args: argparse.Namespace) -> ConnectorRunner:
    """The runner of the source or sink the flags describe (validated, not started)."""
    kind = args.connector_kind
    config = config_from_args(args)
    spec: Any
    if kind == "source":
        spec = source_spec(config)
        configs = spec.config
    else:
        spec, configs = sink_spec(config)
    secrets_config = orjson.loads(args.secrets_provider_config) if args.secrets_provider_config else None
    instance = InstanceOptions(
        batch_max_messages=args.batch_max_messages, batch_timeout_ms=args.batch_timeout_ms
    )
    if kind == "sink":
        instance.nack_delay_ms = args.negative_ack_redelivery_delay_ms
    options = LocalRunOptions(
        broker=broker_options(args),
        data_dir=args.data_dir,
        state_storage_url=args.state_storage_url,
        hotpath=args.hotpath,
        instance_id_offset=args.instance_id_offset,
        secrets_provider=args.secrets_provider_classname,
        secrets_provider_config=secrets_config,
        instance=instance,
    )
    transform = transform_of(config) if kind == "sink" else None
    return ConnectorRunner(spec, configs, options, connector_of(config, kind), transform)


def _run_localrun(args: argparse.Namespace) -> int:
    runner = build_runner(args)
    runner.prepare()  # class and archive errors surface before any broker starts
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runner.start()
    print(
        f"magnetar: running {args.connector_kind} {runner.spec.fqfn} x{runner.parallelism} "
        f"on {runner.broker_url}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    next_status = time.monotonic() + args.status_interval
    try:
        while not stop.wait(0.2):
            if args.status_interval and time.monotonic() >= next_status:
                next_status += args.status_interval
                print(orjson.dumps(runner.status()).decode(), flush=True)
            if all(not inst.is_alive() for inst in runner.instances):
                for inst in runner.instances:
                    if inst.failure_text:
                        print(f"magnetar: instance {inst.instance_id}: {inst.failure_text}", file=sys.stderr)
                print("magnetar: every instance stopped", file=sys.stderr)
                return 1
    finally:
        runner.stop()
    return 0


def _available(kind: str) -> Any:
    builtins = BUILTIN_SOURCES if kind == "source" else BUILTIN_SINKS

    def run(_args: argparse.Namespace) -> int:
        listing = [
            {"name": name, "description": desc, f"{kind}Class": f"{cls.__module__}.{cls.__name__}"}
            for name, (cls, desc) in sorted(builtins.items())
        ]
        print(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode())
        return 0

    return run


def add_connector_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``magnetar sources`` and ``magnetar sinks``."""
    from engine.cli.connectors_admin import add_connector_admin_parsers

    sources = sub.add_parser("sources", help="source commands (as pulsar-admin sources)")
    ssub = sources.add_subparsers(dest="verb", metavar="VERB")
    _add_source_localrun(ssub)
    add_connector_admin_parsers(ssub, "source", _common_flags)
    ssub.add_parser("available-sources", help="list the built-in sources").set_defaults(
        handler=_available("source")
    )
    sinks = sub.add_parser("sinks", help="sink commands (as pulsar-admin sinks)")
    ksub = sinks.add_subparsers(dest="verb", metavar="VERB")
    _add_sink_localrun(ksub)
    add_connector_admin_parsers(ksub, "sink", _common_flags)
    ksub.add_parser("available-sinks", help="list the built-in sinks").set_defaults(
        handler=_available("sink")
    )
