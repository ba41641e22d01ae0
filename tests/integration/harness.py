"""Run a function through LocalRunner against the test broker and collect outputs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pulsar

from engine.broker.client import BrokerOptions
from engine.config import parse_function_config, resolve
from engine.instance.instance import InstanceOptions
from engine.runtime.localrun import LocalRunner, LocalRunOptions

MOD = "tests.integration.functions_under_test"


def runner_for(broker_url: str, twin: str, data_dir: str, config: dict[str, Any], **opts: Any) -> LocalRunner:
    cfg = {"subscriptionPosition": "Earliest", **config}
    if "className" in cfg and "." not in cfg["className"]:
        cfg["className"] = f"{MOD}.{cfg['className']}"
    spec = resolve(parse_function_config(cfg))
    broker_kind = opts.pop("broker_kind", "pulsar-lite")  # the test broker is pulsar-lite
    inst_opts = InstanceOptions(
        nack_delay_ms=opts.pop("nack_delay_ms", 200),
        stop_grace_s=5.0,
        input_message_properties=opts.pop("input_message_properties", False),
        output_log=opts.pop("output_log", None),
    )
    # The thread runtime unless asked otherwise: these tests read the instances, their
    # state store and module-level gates in this very process.
    runtime = opts.pop("runtime", "thread")
    return LocalRunner(
        spec,
        LocalRunOptions(
            broker=BrokerOptions(url=broker_url, kind=broker_kind),
            runtime=runtime,
            data_dir=data_dir,
            hotpath=twin,
            instance=inst_opts,
            **opts,
        ),
    )


def produce(client: pulsar.Client, topic: str, payloads: list[Any], batching: bool = True) -> None:
    producer = client.create_producer(
        topic, batching_enabled=batching, batching_max_publish_delay_ms=1, block_if_queue_full=True
    )
    for p in payloads:
        if isinstance(p, tuple):
            data, key, props = p
            producer.send_async(data, None, partition_key=key, properties=props)
        else:
            producer.send_async(p if isinstance(p, bytes) else str(p).encode(), None)
    producer.flush()
    producer.close()


def consume(
    client: pulsar.Client, topic: str, count: int, timeout: float = 20.0, sub: str | None = None
) -> list[pulsar.Message]:
    consumer = client.subscribe(
        topic,
        sub or f"reader-{uuid.uuid4().hex[:6]}",
        initial_position=pulsar.InitialPosition.Earliest,
        consumer_type=pulsar.ConsumerType.Shared,
    )
    got: list[pulsar.Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            try:
                msg = consumer.receive(200)
            except pulsar.Timeout:
                continue
            got.append(msg)
            consumer.acknowledge(msg)
    finally:
        consumer.close()
    return got


def drain(
    client: pulsar.Client, topic: str, quiet: float = 1.5, sub: str | None = None
) -> list[pulsar.Message]:
    """Everything readable on ``topic`` until nothing arrives for ``quiet`` seconds."""
    consumer = client.subscribe(
        topic,
        sub or f"drain-{uuid.uuid4().hex[:6]}",
        initial_position=pulsar.InitialPosition.Earliest,
        consumer_type=pulsar.ConsumerType.Shared,
    )
    got = []
    try:
        while True:
            try:
                msg = consumer.receive(int(quiet * 1000))
            except pulsar.Timeout:
                return got
            got.append(msg)
            consumer.acknowledge(msg)
    finally:
        consumer.close()


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def process_instance(
    broker_url: str,
    tmp: Any,
    config: dict[str, Any],
    twin: str = "native",
    state_url: str | None = None,
    worker_id: str = "",
    consumer_id_spread: int = 0,
    forks: Any = None,
    **options: Any,
) -> Any:
    """A (not yet started) process-runtime instance 0 of ``config``, as a worker would launch it.

    ``forks`` is a :class:`~engine.runtime.forkserver.ForkServer` to fork the child from
    (``None``: spawned afresh).
    """
    import dataclasses
    import os

    from engine.config.details import to_details
    from engine.runtime.child import Launch
    from engine.runtime.process import ProcessInstance

    spec = resolve(parse_function_config({"subscriptionPosition": "Earliest", **config}))
    inst_opts = InstanceOptions(**{"nack_delay_ms": 100, "stop_grace_s": 5.0, **options})
    launch = Launch(
        fqfn=spec.fqfn,
        instance_id=0,
        details=to_details(spec).SerializeToString(),
        package_path=None,
        broker=dataclasses.asdict(
            BrokerOptions(url=broker_url, consumer_id_spread=consumer_id_spread, kind="pulsar-lite")
        ),
        state_storage_url=state_url or f"sqlite:///{os.path.join(str(tmp), 'state.db')}",
        hotpath=twin,
        options=dataclasses.asdict(inst_opts),
        data_dir=str(tmp),
        worker_id=worker_id,
    )
    return ProcessInstance(spec, launch, os.path.join(str(tmp), "instances"), stop_grace_s=5.0, forks=forks)
