"""``magnetar functions localrun``: run a function here, on the embedded broker or a given one."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import orjson

from engine.broker.capabilities import BROKER_KINDS
from engine.broker.client import BrokerOptions
from engine.cli.function_flags import add_function_flags, overrides_from_args
from engine.cli.startup import (
    DEFAULT_BROKER_CONNECT_TIMEOUT,
    StartupError,
    check_broker_reachable,
    check_broker_url,
    check_state_url,
    claim_data_dir,
    describe_start_failure,
)
from engine.config import build_function_config, resolve
from engine.instance.instance import InstanceOptions
from engine.runtime.localrun import LocalRunner, LocalRunOptions

__all__ = [
    "add_broker_flags",
    "add_debug_flag",
    "add_localrun_parser",
    "broker_options",
    "check_start",
    "run_localrun",
]


def add_broker_flags(parser: argparse.ArgumentParser) -> None:
    """``--broker-url`` and its authentication and TLS flags (pulsar-admin names)."""
    parser.add_argument(
        "--broker-url",
        "--broker-service-url",
        "--brokerServiceUrl",
        dest="broker_url",
        help="pulsar:// or pulsar+ssl:// URL; without it an embedded broker is started",
    )
    parser.add_argument(
        "--broker-kind",
        choices=BROKER_KINDS,
        default="apache",
        help="what the --broker-url broker is: apache (default) or pulsar-lite, whose faults are "
        "then worked around (the embedded broker is always pulsar-lite)",
    )
    # Each flag also answers to the spelling older pulsar-admin releases used.
    parser.add_argument(
        "--client-auth-plugin",
        "--clientAuthPlugin",
        dest="client_auth_plugin",
        help="authentication plugin (e.g. AuthenticationToken)",
    )
    parser.add_argument(
        "--client-auth-params",
        "--clientAuthParams",
        dest="client_auth_params",
        help="authentication parameters (e.g. token:XYZ)",
    )
    parser.add_argument("--use-tls", "--use_tls", dest="use_tls", action="store_true", help="use TLS")
    parser.add_argument(
        "--tls-allow-insecure",
        "--tls_allow_insecure",
        dest="tls_allow_insecure",
        action="store_true",
        help="accept untrusted certificates",
    )
    parser.add_argument(
        "--tls-trust-cert-path",
        "--tls_trust_cert_path",
        dest="tls_trust_cert_path",
        help="CA certificate file",
    )
    parser.add_argument(
        "--hostname-verification-enabled",
        "--hostname_verification_enabled",
        dest="hostname_verification_enabled",
        action="store_true",
        help="verify the broker host",
    )
    parser.add_argument(
        "--broker-connect-timeout",
        type=float,
        default=DEFAULT_BROKER_CONNECT_TIMEOUT,
        help="seconds to wait for the --broker-url broker to answer at start "
        f"(default {DEFAULT_BROKER_CONNECT_TIMEOUT:g}); an unreachable one fails the start",
    )


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug``: a failure to start shows its traceback, not only its one line."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,  # keeps a --debug given before the command
        help="show the traceback of a failure to start",
    )


def check_start(args: argparse.Namespace, data_dir: str) -> None:
    """Check the URLs, the data dir and the broker before anything starts (:mod:`engine.cli.startup`)."""
    broker_url = getattr(args, "broker_url", None)
    if broker_url:
        check_broker_url(broker_url)
    if args.state_storage_url:
        check_state_url(args.state_storage_url)
    claim_data_dir(data_dir)
    if broker_url:
        check_broker_reachable(broker_url, args.broker_connect_timeout)


def broker_options(args: argparse.Namespace) -> BrokerOptions | None:
    """The broker options from the flags, ``None`` for the embedded broker."""
    if not args.broker_url:
        return None
    return BrokerOptions(
        url=args.broker_url,
        auth_plugin=args.client_auth_plugin,
        auth_params=args.client_auth_params,
        use_tls=args.use_tls,
        tls_allow_insecure=args.tls_allow_insecure,
        tls_trust_cert_path=args.tls_trust_cert_path,
        tls_hostname_verification=args.hostname_verification_enabled,
        kind=args.broker_kind,
    )


def add_localrun_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``localrun`` under ``magnetar functions``."""
    p = sub.add_parser("localrun", help="run a function on this machine (an instance per child process)")
    add_function_flags(p)
    add_broker_flags(p)
    add_debug_flag(p)
    p.add_argument("--data-dir", default="./magnetar-data", help="broker data, state and package cache")
    p.add_argument(
        "--state-storage-url",
        "--state-storage-service-url",
        "--stateStorageServiceUrl",
        dest="state_storage_url",
        help="sqlite:///path or postgresql://user@host/db (default: state.db in the data dir)",
    )
    p.add_argument(
        "--web-service-url",
        dest="web_service_url",
        help="the Pulsar web service URL (accepted; Python instances have no admin client)",
    )
    p.add_argument(
        "--instance-id-offset",
        "--instanceIdOffset",
        dest="instance_id_offset",
        type=int,
        default=0,
        help="first instance id",
    )
    p.add_argument(
        "--cluster-name",
        dest="cluster_name",
        default="standalone",
        help="the cluster label of the metrics (default standalone)",
    )
    p.add_argument(
        "--runtime",
        default="PROCESS",
        type=str.upper,
        choices=["PROCESS", "THREAD"],
        help="PROCESS (default): each instance in a child process of its own, restarted if it dies; "
        "THREAD: on threads of this process, sharing its fate (a crash ends the run)",
    )
    p.add_argument("--metrics-port-start", type=int, help="serve Prometheus /metrics on 127.0.0.1:PORT")
    p.add_argument("--secrets-provider-classname", help="cleartext (default), env, file, or a class path")
    p.add_argument("--secrets-provider-config", help="JSON config for the secrets provider")
    p.add_argument("--hotpath", choices=["native", "pure"], help="hot-path twin (default: native if built)")
    p.add_argument("--batch-max-messages", type=int, default=1000, help="messages per received batch")
    p.add_argument("--batch-timeout-ms", type=int, default=2, help="wait this long to fill a batch")
    p.add_argument(
        "--negative-ack-redelivery-delay-ms",
        type=int,
        default=1000,
        help="delay before a failed message is redelivered (timeoutMs wins when set)",
    )
    p.add_argument(
        "--input-message-properties",
        action="store_true",
        help="add __pfn_input_topic__/__pfn_input_msg_id__ to outputs, as Apache does (costs ~4 us/msg)",
    )
    p.add_argument(
        "--status-interval", type=float, default=0.0, help="print instance status every N seconds (0: never)"
    )
    p.set_defaults(handler=run_localrun)


def run_localrun(args: argparse.Namespace) -> int:
    """Validate, load, start, and run until SIGINT/SIGTERM."""
    spec = resolve(build_function_config(args.function_config_file, overrides_from_args(args)))
    secrets_config = orjson.loads(args.secrets_provider_config) if args.secrets_provider_config else None
    runner = LocalRunner(
        spec,
        LocalRunOptions(
            broker=broker_options(args),
            data_dir=args.data_dir,
            state_storage_url=args.state_storage_url,
            hotpath=args.hotpath,
            instance_id_offset=args.instance_id_offset,
            metrics_port=args.metrics_port_start,
            cluster_name=args.cluster_name,
            secrets_provider=args.secrets_provider_classname,
            secrets_provider_config=secrets_config,
            runtime=args.runtime.lower(),
            instance=InstanceOptions(
                batch_max_messages=args.batch_max_messages,
                batch_timeout_ms=args.batch_timeout_ms,
                nack_delay_ms=args.negative_ack_redelivery_delay_ms,
                input_message_properties=args.input_message_properties,
            ),
        ),
    )
    runner.prepare()  # code and SerDe errors surface before any broker starts
    check_start(args, args.data_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        runner.start()
    except Exception as exc:
        raise StartupError(describe_start_failure(exc, args.broker_url)) from exc
    print(
        f"magnetar: running {spec.fqfn} x{spec.parallelism} ({runner.hot.name} hot path, "
        f"{args.runtime.lower()} runtime) "
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
            if not runner.alive():
                print("magnetar: every instance stopped", file=sys.stderr)
                return 1
    finally:
        runner.stop()
    return 0
