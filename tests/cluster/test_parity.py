"""Apache parity on a real worker: a pulsar-admin style script, REST built-ins, cleanupSubscription."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pulsar
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.broker import EmbeddedBroker, free_port
from engine.proto import Function_pb2 as pb
from tests.cluster.conftest import Cluster, magnetar, new_cluster, rest, wait_until
from tests.integration.harness import consume, produce

EXAMPLE = Path(__file__).resolve().parents[1] / "integration" / "exclaim_example.py"
SCRIPT = Path(__file__).resolve().parent / "scripts" / "pulsar_admin_style.sh"
METERED = Path(__file__).resolve().parent / "metered_example.py"
CLUSTER = "parity-cluster"

# What Apache's Python instance exposes (function_stats.py and the context's user metric):
# each family with its type, and each sample name with its labels. Counters declared as
# ``x_total`` render as ``x_total``; the one-minute ones are declared ``x_total_1min`` and
# so render as ``x_total_1min_total``; prometheus_client adds ``_created`` to counters
# and summaries (as gauges of their own in the text format).
LABELS = {"tenant", "namespace", "name", "instance_id", "cluster", "fqfn"}
_COUNTER_FAMILIES = [
    "received", "processed_successfully", "system_exceptions", "user_exceptions",
    "received_total_1min", "processed_successfully_total_1min", "system_exceptions_total_1min",
    "user_exceptions_total_1min",
]  # fmt: skip
APACHE_FAMILIES = {
    **{f"pulsar_function_{f}": "counter" for f in _COUNTER_FAMILIES},
    "pulsar_function_process_latency_ms": "summary",
    "pulsar_function_process_latency_ms_1min": "summary",
    "pulsar_function_last_invocation": "gauge",
    "pulsar_function_user_exception": "gauge",
    "pulsar_function_system_exception": "gauge",
    "pulsar_function_user_metric": "summary",
}
# The text format puts each ``_created`` series in a gauge family of its own.
APACHE_FAMILIES.update(
    {f"{n}_created": "gauge" for n, t in list(APACHE_FAMILIES.items()) if t in ("counter", "summary")}
)
APACHE_SAMPLES = {
    **{f"pulsar_function_{f}_{s}": LABELS for f in _COUNTER_FAMILIES for s in ("total", "created")},
    **{
        f"pulsar_function_process_latency_ms{w}_{s}": LABELS
        for w in ("", "_1min")
        for s in ("count", "sum", "created")
    },
    "pulsar_function_last_invocation": LABELS,
    "pulsar_function_user_exception": LABELS | {"error", "ts"},
    "pulsar_function_system_exception": LABELS | {"error", "ts"},
    **{f"pulsar_function_user_metric_{s}": LABELS | {"metric"} for s in ("count", "sum", "created")},
}


@pytest.fixture(scope="module")
def cluster1(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("parity")), 1, ["--cluster-name", CLUSTER])
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


def test_builtin_functions_are_empty_and_connectors_listed(cluster1: Cluster) -> None:
    url = cluster1.workers[0].url
    assert rest(url, "GET", "/admin/v3/functions/builtins") == []
    listed = rest(url, "GET", "/admin/v3/functions/connectors")
    assert listed == rest(url, "GET", "/admin/v2/worker/connectors")
    assert {c["name"] for c in listed} >= {"file", "jdbc-postgres"}
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


def _assigned(url: str, name: str) -> list[str]:
    """The worker's assignment keys of ``public/default/name``."""
    keys = rest(url, "GET", "/admin/v2/worker/assignments").values()
    return [k for ks in keys for k in ks if k.startswith(f"public/default/{name}:")]


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
    if kept:
        assert wait_until(lambda: not _assigned(cluster1.workers[0].url, name), timeout=30)
        assert _backlog_after_delete(client, topic, name) == [b"after-delete"]
    else:  # removed by the worker that ran the instance, once it has stopped
        assert wait_until(lambda: _backlog_after_delete(client, topic, name) == [], timeout=45)


def _scrape(url: str, fqfn: str) -> tuple[dict[str, str], dict[str, list[dict[str, str]]]]:
    """The function's families (name -> type) and samples (name -> label sets) on ``/metrics``."""
    families: dict[str, str] = {}
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(rest(url, "GET", "/metrics").decode()):
        if not family.name.startswith("pulsar_function_") or family.name.startswith("pulsar_function_worker"):
            continue
        families[family.name] = family.type
        for sample in family.samples:
            if sample.labels.get("fqfn") == fqfn:
                samples.setdefault(sample.name, []).append(sample.labels)
    return families, samples


def test_metrics_names_labels_and_types_are_apaches(cluster1: Cluster, client: pulsar.Client) -> None:
    name = f"metered{uuid.uuid4().hex[:6]}"
    fqfn = f"public/default/{name}"
    inp, out = f"persistent://public/default/{name}-in", f"persistent://public/default/{name}-out"
    url = cluster1.workers[0].url
    res = magnetar(
        "functions", "create", "--admin-url", url, "--name", name, "--py", str(METERED),
        "--classname", "metered_example.Metered", "--inputs", inp, "--output", out,
        "--subs-position", "Earliest",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    # Seven user exceptions in a minute: Apache reports the first five as gauges.
    produce(client, inp, [b"ok", b"unencodable", *(f"boom-{i}".encode() for i in range(7))])
    assert [m.data() for m in consume(client, out, 1)] == [b"ok!"]

    def one_minute() -> Any:
        stats = rest(url, "GET", "/admin/v2/worker-stats/functionsmetrics")
        return next((m["metrics"]["1min"] for m in stats if m["name"] == fqfn), None)

    assert wait_until(lambda: (one_minute() or {}).get("receivedTotal") == 9, timeout=30)
    families, samples = _scrape(url, fqfn)
    assert families == APACHE_FAMILIES
    assert {n: {frozenset(ls) for ls in labels} for n, labels in samples.items()} == {
        n: {frozenset(ls)} for n, ls in APACHE_SAMPLES.items()
    }
    for labels in (ls for per_name in samples.values() for ls in per_name):
        assert {k: labels[k] for k in LABELS} == {
            "tenant": "public", "namespace": "public/default", "name": name, "instance_id": "0",
            "cluster": CLUSTER, "fqfn": fqfn,
        }  # fmt: skip
    user_exc = samples["pulsar_function_user_exception"]
    assert sorted(ls["error"] for ls in user_exc) == [f"boom-{i}" for i in range(5)]
    assert all(ls["ts"].isdigit() for ls in user_exc)
    (sys_exc,) = samples["pulsar_function_system_exception"]
    assert sys_exc["error"] == "IdentitySerDe cannot serialize object of type object"
    assert {ls["metric"] for ls in samples["pulsar_function_user_metric_count"]} == {"input_size"}

    text = rest(url, "GET", "/metrics").decode()
    assert f'pulsar_function_received_total_1min_total{{cluster="{CLUSTER}",fqfn="{fqfn}"' in text
    one_min = one_minute()
    assert one_min["receivedTotal"] == 9 and one_min["userExceptionsTotal"] == 7
    # The function returned for "ok" and "unencodable" (whose output then failed to encode).
    assert one_min["systemExceptionsTotal"] == 1 and one_min["processedSuccessfullyTotal"] == 2
    assert one_min["avgProcessLatency"] >= 0.0
    magnetar("functions", "delete", "--admin-url", url, "--name", name)


def _create_from(cluster: Cluster, client: pulsar.Client, name: str, py: str) -> None:
    """Create ``name`` with its code at ``py`` and show it runs."""
    inp, out = f"persistent://public/default/{name}-in", f"persistent://public/default/{name}-out"
    url = cluster.workers[0].url
    res = magnetar(
        "functions", "create", "--admin-url", url, "--name", name, "--py", py,
        "--classname", "exclaim_example.Exclaim", "--inputs", inp, "--output", out,
        "--subs-position", "Earliest",
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == "Created successfully", res.stderr
    produce(client, inp, [b"pkg"])
    assert [m.data() for m in consume(client, out, 1)] == [b"pkg!"]
    assert magnetar("functions", "delete", "--admin-url", url, "--name", name).returncode == 0


def test_package_by_http_url(cluster1: Cluster, client: pulsar.Client) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(EXAMPLE.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        _create_from(cluster1, client, f"http{uuid.uuid4().hex[:6]}", f"{base}/{EXAMPLE.name}")
        res = magnetar(
            "functions", "create", "--admin-url", cluster1.workers[0].url, "--name", "missing",
            "--py", f"{base}/absent.py", "--classname", "absent.F", "--inputs", "in",
        )  # fmt: skip
        assert res.returncode == 1
        assert res.stderr.strip() == f"magnetar: 400: url: '{base}/absent.py': the server answered 404"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_packages_verbs_and_function_url(cluster1: Cluster, client: pulsar.Client, tmp_path: Path) -> None:
    pkg = f"exclaim{uuid.uuid4().hex[:6]}"
    v1 = f"function://public/default/{pkg}@v1"
    admin = ["--admin-url", cluster1.workers[0].url]

    def ok(*args: str) -> str:
        res = magnetar("packages", *args, *admin)
        assert res.returncode == 0, (args, res.stderr)
        return res.stdout.strip()

    assert ok("upload", v1, "--path", str(EXAMPLE), "--description", "exclaims", "-P", "team=core") == (
        f"The package '{v1}' uploaded from path '{EXAMPLE}' successfully"
    )
    ok("upload", f"function://public/default/{pkg}@v2", "--path", str(EXAMPLE), "--description", "two")
    assert orjson.loads(ok("list-versions", f"function://public/default/{pkg}")) == ["v1", "v2"]
    listed = orjson.loads(ok("list", "--type", "function", "public/default"))
    assert f"function://public/default/{pkg}" in listed
    meta = orjson.loads(ok("get-metadata", v1))
    assert meta["description"] == "exclaims" and meta["properties"] == {"team": "core"}
    assert meta["createTime"] > 0 and meta["modificationTime"] >= meta["createTime"]
    assert ok("update-metadata", v1, "-d", "shouts", "-c", "dev@example.invalid") == (
        f"The metadata of the package '{v1}' updated successfully"
    )
    assert orjson.loads(ok("get-metadata", v1))["contact"] == "dev@example.invalid"
    out = tmp_path / "down.py"
    assert ok("download", v1, "--path", str(out)) == (
        f"The package '{v1}' downloaded to path '{out}' successfully"
    )
    assert out.read_bytes() == EXAMPLE.read_bytes()

    _create_from(cluster1, client, f"fromreg{uuid.uuid4().hex[:6]}", v1)

    res = magnetar("packages", "upload", v1, "--path", str(EXAMPLE), "--description", "again", *admin)
    assert res.returncode == 1 and f"409: package {v1} already exists" in res.stderr
    assert ok("delete", v1) == f"The package '{v1}' deleted successfully"
    res = magnetar("packages", "get-metadata", v1, *admin)
    assert res.returncode == 1 and f"404: package {v1} does not exist" in res.stderr
    res = magnetar("packages", "get-metadata", "jar://public/default/x@1", *admin)
    assert res.returncode == 1 and "type one of function, sink, source" in res.stderr


def test_functions_upload_then_download_by_path(cluster1: Cluster, tmp_path: Path) -> None:
    path = f"uploads/{uuid.uuid4().hex[:6]}/code.py"
    admin = ["--admin-url", cluster1.workers[0].url]
    res = magnetar("functions", "upload", "--source-file", str(EXAMPLE), "--path", path, *admin)
    assert res.returncode == 0 and res.stdout.strip() == "Uploaded successfully", res.stderr
    dest = tmp_path / "back.py"
    res = magnetar("functions", "download", "--path", path, "--destination-file", str(dest), *admin)
    assert res.returncode == 0 and res.stdout.strip() == "Downloaded successfully", res.stderr
    assert dest.read_bytes() == EXAMPLE.read_bytes()
    res = magnetar(
        "functions", "download", "--path", "never/uploaded", "--destination-file", str(dest), *admin
    )
    assert res.returncode == 1 and "404" in res.stderr


def test_refuses_to_share_topics_with_a_foreign_worker(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    namespace = f"public/fw{uuid.uuid4().hex[:8]}"
    # What an Apache functions worker leaves on its metadata topic: a bare protobuf record,
    # without Magnetar's key and properties.
    foreign = pb.FunctionMetaData(functionDetails=pb.FunctionDetails(tenant="public", name="theirs"))
    produce(client, f"persistent://{namespace}/metadata", [foreign.SerializeToString()])
    res = subprocess.run(
        [
            sys.executable, "-m", "engine", "worker", "--broker-url", broker.url,
            "--broker-kind", "pulsar-lite", "--worker-id", "w1", "--port", str(free_port()),
            "--data-dir", str(tmp_path / "w1"), "--functions-namespace", namespace,
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "ready on" not in res.stdout
    assert f"magnetar: persistent://{namespace}/metadata holds a record Magnetar did not write" in res.stderr
    assert "it has no key" in res.stderr and "--functions-namespace" in res.stderr
