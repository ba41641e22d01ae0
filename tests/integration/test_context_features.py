"""The Context end to end: user config, secrets, message fields, state, publish, logs, metrics."""

from __future__ import annotations

import json
import urllib.request

import pulsar
import pytest

from engine.broker import EmbeddedBroker, free_port
from engine.hotpath import HotPath
from engine.state import SqliteStateStore
from tests.integration.functions_under_test import Publisher
from tests.integration.harness import consume, produce, runner_for, wait_for


def test_user_config_secrets_and_message_fields(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("apiKey", "s3cr3t")
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "ContextEcho",
        "name": "echo",
        "inputs": [inp],
        "output": out,
        "userConfig": {"threshold": 5, "nested": {"a": [1]}},
        "secrets": {"apiKey": "ignored-by-env"},
    }
    with runner_for(broker.url, hot.name, data_dir, cfg, secrets_provider="env"):
        produce(client, inp, [(b"hello", "key-1", {"p": "v"}), b"no-key"])
        got, no_key = (json.loads(m.data()) for m in consume(client, out, 2))
    assert got["input"] == "hello" and got["threshold"] == 5
    assert got["config"] == {"threshold": 5, "nested": {"a": [1]}}
    assert got["secret"] == "s3cr3t" and got["missing_secret"] is None
    assert got["key"] == "key-1" and got["props"] == {"p": "v"}
    assert got["topic"] == f"persistent://public/default/{inp}"
    assert got["name"] == ["public", "default", "echo"] and got["instance"] == "0"
    assert got["inputs"] == [f"persistent://public/default/{inp}"]
    assert got["output"] == f"persistent://public/default/{out}"
    assert got["msgid_is_set"] is True and got["partition_index"] == -1
    # Apache's answers for empty values, and the client.
    assert no_key["key"] == "" and got["serde"] == "" and got["client"] is True


def test_default_secrets_provider_is_clear_text(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "ContextEcho", "inputs": [inp], "output": out, "secrets": {"apiKey": "the-key"}}
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, [b"x"])
        got = json.loads(consume(client, out, 1)[0].data())
    assert got["secret"] == "the-key" and got["missing_secret"] is None


def test_file_secrets_provider(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    tmp_path: object,
) -> None:
    import pathlib

    secret_file = pathlib.Path(str(tmp_path)) / "api.txt"
    secret_file.write_text("from-file\n")
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {
        "className": "ContextEcho",
        "inputs": [inp],
        "output": out,
        "secrets": {"apiKey": str(secret_file)},
    }
    with runner_for(broker.url, hot.name, data_dir, cfg, secrets_provider="file"):
        produce(client, inp, ["x"])
        assert json.loads(consume(client, out, 1)[0].data())["secret"] == "from-file"


def test_state_counters_values_and_delete(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "WordCount", "name": "wc", "inputs": [inp], "output": out, "retainOrdering": True}
    lines = ["a b a", "b c", "a", "reset a", "reset"]
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, lines, batching=False)
        got = [m.data().decode() for m in consume(client, out, len(lines))]
    # Read-your-writes inside a batch, and counts carried across batches.
    assert got == [
        "a=2 last=a b a",
        "b=2 last=b c",
        "a=3 last=a",
        "reset=0 last=reset a",
        "reset=0 last=reset",
    ]
    store = SqliteStateStore(f"{data_dir}/state.db")
    ns = "public/default/wc"
    assert (
        store.get_counter(ns, "a") == 4
        and store.get_counter(ns, "b") == 2
        and store.get_counter(ns, "c") == 1
    )
    assert store.get_counter(ns, "reset") is None  # del_counter works
    assert store.get_value(ns, "last") == b"reset"


def test_state_commit_failure_fails_the_batch(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "WordCount", "name": "wcf", "inputs": [inp], "output": out}
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        store = r.state_store
        assert store is not None
        real_commit = store.commit
        calls = {"n": 0}

        def flaky_commit(*args: object) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("database unreachable")
            real_commit(*args)  # type: ignore[arg-type]

        store.commit = flaky_commit  # type: ignore[method-assign]
        produce(client, inp, ["x y"], batching=False)
        assert wait_for(lambda: store.get_counter("public/default/wcf", "x") == 1)
        stats = r.instances[0].stats
        assert stats.system_exceptions >= 1
        assert "state commit failed" in stats.latest_system[0][0]


def test_publish_with_properties_and_callbacks(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, side = f"{topic_prefix}-in", f"{topic_prefix}-side"
    Publisher.callbacks.clear()
    cfg = {"className": "Publisher", "name": "pub", "inputs": [inp], "userConfig": {"side": side}}
    with runner_for(broker.url, hot.name, data_dir, cfg, metrics_port=(port := free_port())) as r:
        produce(client, inp, ["one", "two"])
        got = consume(client, side, 2)
        assert wait_for(lambda: len(Publisher.callbacks) == 2)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        stats = r.instances[0].stats
    assert sorted(m.data() for m in got) == [b"one-side", b"two-side"]
    assert all(m.properties() == {"origin": "publisher"} for m in got)
    assert Publisher.callbacks == ["Ok", "Ok"] or all("Ok" in c for c in Publisher.callbacks)
    assert stats.user_metrics["lengths"][:2] == [6.0, 2.0]
    labels = 'cluster="standalone",fqfn="public/default/pub",instance_id="0",name="pub"'
    assert "pulsar_function_received_total{" in metrics and labels in metrics
    assert "pulsar_function_user_metric_sum{" in metrics and 'metric="lengths"' in metrics


def test_log_topic_receives_function_logs(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out, logs = f"{topic_prefix}-in", f"{topic_prefix}-out", f"{topic_prefix}-logs"
    cfg = {"className": "Logger", "inputs": [inp], "output": out, "logTopic": logs}
    with runner_for(broker.url, hot.name, data_dir, cfg):
        produce(client, inp, ["visible"])
        consume(client, out, 1)
        records = consume(client, logs, 1)
    assert b"saw visible" in records[0].data() and records[0].properties()["loglevel"] == "INFO"


def test_input_message_properties_option(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    import base64

    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Exclaim", "inputs": [inp], "output": out}
    with runner_for(broker.url, hot.name, data_dir, cfg, input_message_properties=True):
        produce(client, inp, ["p"])
        msg = consume(client, out, 1)[0]
    props = msg.properties()
    assert props["__pfn_input_topic__"] == f"persistent://public/default/{inp}"
    assert pulsar.MessageId.deserialize(base64.b64decode(props["__pfn_input_msg_id__"])) is not None


def test_parallel_instances_share_the_work(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Exclaim", "inputs": [inp], "output": out, "parallelism": 3}
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        produce(client, inp, [f"m{i}" for i in range(3000)])
        got = consume(client, out, 3000)
        ids = [i.instance_id for i in r.instances]
        assert wait_for(lambda: sum(i.stats.received for i in r.instances) >= 3000)
    assert ids == [0, 1, 2] and len({m.data() for m in got}) == 3000


def test_status_and_metrics_as_apache_messages(
    broker: EmbeddedBroker, client: pulsar.Client, hot: HotPath, data_dir: str, topic_prefix: str
) -> None:
    from engine.proto import InstanceCommunication_pb2 as pb

    inp, out = f"{topic_prefix}-in", f"{topic_prefix}-out"
    cfg = {"className": "Poison", "inputs": [inp], "output": out, "processingGuarantees": "ATMOST_ONCE"}
    with runner_for(broker.url, hot.name, data_dir, cfg) as r:
        produce(client, inp, ["ok", "poison"])
        consume(client, out, 1)
        inst = r.instances[0]
        assert wait_for(lambda: inst.stats.user_exceptions == 1)
        status = pb.FunctionStatus.FromString(inst.status_proto("w1").SerializeToString())
        metrics = pb.MetricsData.FromString(inst.metrics_proto().SerializeToString())
    assert status.running and status.numReceived == 2 and status.numSuccessfullyProcessed == 1
    assert (
        status.numUserExceptions == 1
        and "cannot digest poison" in status.latestUserExceptions[0].exceptionString
    )
    assert status.instanceId == "0" and status.workerId == "w1"
    assert metrics.receivedTotal == 2 and metrics.userExceptionsTotal == 1 and metrics.lastInvocation > 0
