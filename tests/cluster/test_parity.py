"""Apache parity on a real worker: a pulsar-admin style script, REST built-ins, cleanupSubscription."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pulsar
import pytest

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.integration.harness import consume, produce

EXAMPLE = Path(__file__).resolve().parents[1] / "integration" / "exclaim_example.py"
SCRIPT = Path(__file__).resolve().parent / "scripts" / "pulsar_admin_style.sh"


@pytest.fixture(scope="module")
def cluster1(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("parity")), 1)
    yield c
    c.stop_all()


def test_a_pulsar_admin_style_script_parses_the_json(cluster1: Cluster, tmp_path: Path) -> None:
    name = f"script{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "MAGNETAR_ADMIN_URL": cluster1.workers[0].url}
    res = subprocess.run(
        ["bash", str(SCRIPT), sys.executable, name, str(EXAMPLE), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert res.returncode == 0 and res.stdout.strip().endswith("script passed"), (res.stdout, res.stderr)


def test_builtins_and_connectors_are_empty_lists(cluster1: Cluster) -> None:
    url = cluster1.workers[0].url
    assert rest(url, "GET", "/admin/v3/functions/builtins") == []
    assert rest(url, "GET", "/admin/v3/functions/connectors") == []
    assert rest(url, "POST", "/admin/v3/functions/builtins/reload") == b""


def _run_and_delete(cluster: Cluster, client: pulsar.Client, name: str, cleanup: list[str]) -> str:
    """Create ``name``, show it consumes, delete it; returns its input topic."""
    inp, out = f"persistent://public/default/{name}-in", f"persistent://public/default/{name}-out"
    admin = ["--admin-url", cluster.workers[0].url]
    res = magnetar(
        "functions", "create", *admin, "--name", name, "--py", str(EXAMPLE),
        "--classname", "exclaim_example.Exclaim", "--inputs", inp, "--output", out,
        "--subs-position", "Earliest", *cleanup,
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == "Created successfully", res.stderr
    produce(client, inp, [b"a"])
    assert [m.data() for m in consume(client, out, 1)] == [b"a!"]
    res = magnetar("functions", "delete", *admin, "--name", name)
    assert res.returncode == 0 and res.stdout.strip() == "Deleted successfully", res.stderr
    return inp


def _backlog_after_delete(client: pulsar.Client, topic: str, name: str) -> list[bytes]:
    """What the function's subscription holds for a message sent after the delete.

    A subscription that survived the delete kept its position and gets the message;
    a removed one is created anew at the latest position, after it.
    """
    produce(client, topic, [b"after-delete"])
    consumer = client.subscribe(
        topic,
        f"public/default/{name}",
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Latest,
    )
    try:
        got: list[bytes] = []
        try:
            while True:
                msg = consumer.receive(timeout_millis=1500)
                got.append(msg.data())
                consumer.acknowledge(msg)
        except pulsar.Timeout:
            return got
    finally:
        consumer.close()


@pytest.mark.parametrize(
    ("cleanup", "kept"),
    [([], False), (["--cleanup-subscription"], False), (["--cleanup-subscription", "false"], True)],
)
def test_cleanup_subscription_on_delete(
    cluster1: Cluster, client: pulsar.Client, cleanup: list[str], kept: bool
) -> None:
    name = f"cleanup{uuid.uuid4().hex[:6]}"
    topic = _run_and_delete(cluster1, client, name, cleanup)
    assert wait_until(
        lambda: name not in rest(cluster1.workers[0].url, "GET", "/admin/v3/functions/public/default")
    )
    assert _backlog_after_delete(client, topic, name) == ([b"after-delete"] if kept else [])
