"""Done when: both mesh forms on a two-worker cluster, end to end, through update, SIGKILL and delete."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pulsar
import pytest
import yaml

import engine.examples.exclamation as exclamation
from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, RestError, magnetar, new_cluster, rest, wait_until
from tests.integration.harness import consume, produce
from tests.mesh.documents import function_mesh, pip66


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _mesh(*args: str, url: str, command: str = "mesh") -> Any:
    res = magnetar(command, *args, "--admin-url", url, timeout=120)
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout) if res.stdout.strip() else None


def _status(url: str, fqmn: str) -> dict[str, Any]:
    status: dict[str, Any] = rest(url, "GET", f"/admin/v3/meshes/{fqmn}/status")
    return status


def _ready(url: str, fqmn: str) -> dict[str, Any] | None:
    st = _status(url, fqmn)
    return st if st["state"] == "ready" else None


def _starts(status: dict[str, Any]) -> dict[str, list[tuple[int, int, str]]]:
    """Per member: ``(start time, restarts, worker)`` of every instance."""
    return {
        m["name"]: [
            (i["status"]["instanceStartTimeMs"], i["status"]["numRestarts"], i["status"]["workerId"])
            for i in m["instances"]
        ]
        for m in status["members"]
    }


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _subscription_kept(client: pulsar.Client, topic: str, subscription: str) -> bool:
    """Whether ``subscription`` survived: a surviving one keeps its position and gets a new message,
    a removed one is created anew at the latest position, after it."""
    marker = f"after-delete-{uuid.uuid4().hex[:6]}".encode()
    produce(client, topic, [marker])
    consumer = client.subscribe(
        topic,
        subscription,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Latest,
    )
    try:
        while True:
            try:
                msg = consumer.receive(timeout_millis=1500)
            except pulsar.Timeout:
                return False
            consumer.acknowledge(msg)
            if msg.data() == marker:
                return True
    finally:
        consumer.close()


def _seen(client: pulsar.Client, topic: str, payload: bytes, timeout: float) -> bool:
    """Whether ``payload`` arrives on ``topic`` (read from the start) within ``timeout`` seconds."""
    consumer = client.subscribe(
        topic,
        f"reader-{uuid.uuid4().hex[:6]}",
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                msg = consumer.receive(timeout_millis=200)
            except pulsar.Timeout:
                continue
            consumer.acknowledge(msg)
            if msg.data() == payload:
                return True
        return False
    finally:
        consumer.close()


@pytest.fixture
def cluster2(broker: EmbeddedBroker, tmp_path: Path) -> Any:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 2)
    yield cluster
    cluster.stop_all()


def test_meshes_end_to_end_on_two_workers(
    cluster2: Cluster, client: pulsar.Client, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    w1, w2 = cluster2.workers[0].url, cluster2.workers[1].url
    ns = cluster2.namespace.split("/")[1] + "-mesh"  # never the workers' own (reserved) namespace
    shutil.copy(exclamation.__file__, tmp_path / "exclamation.py")
    out_dir = tmp_path / "sink"
    out_dir.mkdir()

    # -- create: the seed's PIP-66 chain (through w1), and a FunctionMesh resource (through w2) ----------
    chain_doc = pip66(ns)
    chain_file = _write(tmp_path / "chain.yaml", chain_doc)
    created = _mesh("create", "-f", str(chain_file), url=w1)
    assert created["added"] == ["first", "second"] and created["warnings"] == []
    fm_doc = function_mesh(ns, str(out_dir))
    for source in fm_doc["spec"]["sources"]:
        source["sourceConfig"].update(shape="STRING", sizeBytes=8)
    fm_file = _write(tmp_path / "pipeline.yaml", fm_doc)
    created = _mesh("create", "-f", str(fm_file), url=w2, command="function-mesh")  # the seed's alias
    assert sorted(created["added"]) == ["gen", "shout", "store"]
    chain, pipeline = f"public/{ns}/exclaim-chain", f"public/{ns}/gen-pipeline"
    assert _mesh("list", "--tenant", "public", "--namespace", ns, url=w1) == ["exclaim-chain", "gen-pipeline"]

    # -- data end to end -------------------------------------------------------------------------------
    chain_in, chain_out = (f"persistent://public/{ns}/chain-{s}" for s in ("in", "out"))
    produce(client, chain_in, [b"a", b"b"])
    assert sorted(m.data() for m in consume(client, chain_out, 2, timeout=60)) == [b"a!!", b"b!!"]
    store = out_dir / "out.txt"
    assert wait_until(lambda: len(_lines(store)) == 30, timeout=90), _lines(store)
    assert all(line.endswith("!") for line in _lines(store))

    # -- ready in status, with members, instances and the topics between them ----------------------------
    for url, fqmn in ((w1, chain), (w2, pipeline)):
        st = wait_until(lambda url=url, fqmn=fqmn: _ready(url, fqmn), timeout=60)
        assert st, _status(url, fqmn)
        assert st["condition"] == {
            "condition": "MeshReady",
            "status": "True",
            "action": "NoAction",
            "reason": "AllMembersReady",
        }
        assert all(m["condition"]["status"] == "True" and m["numRunning"] == 1 for m in st["members"])
    st = _status(w1, pipeline)
    loud = next(t for t in st["topics"] if t["topic"].endswith("fm-loud"))
    assert loud["producers"] == ["shout"] and loud["consumers"][0]["member"] == "store"
    assert wait_until(lambda: _status(w1, pipeline)["topics"][0]["backlog"] == 0, timeout=30)
    text = magnetar(
        "mesh", "graph", "gen-pipeline", "--tenant", "public", "--namespace", ns, "--admin-url", w1
    )
    assert "source gen" in text.stdout and "-> function shout" in text.stdout, text.stderr
    svg = rest(w2, "GET", f"/admin/v3/meshes/{pipeline}/graph?format=svg")
    assert svg.startswith(b"<svg") and b">shout</text>" in svg
    dot = rest(w2, "GET", f"/admin/v3/meshes/{pipeline}/graph?format=dot")
    assert b'"gen" -> "shout"' in dot and b'"shout" -> "store"' in dot

    # -- all or nothing: one invalid member stores nothing; a second create of a name is refused -----
    bad = pip66(ns)
    bad["name"] = "half-valid"
    bad["functionInfos"][0]["name"] = "lonely"
    bad["functionInfos"][1].update(name="broken", processingGuarantees="SOMETIMES")
    res = magnetar("mesh", "create", "-f", str(_write(tmp_path / "bad.yaml", bad)), "--admin-url", w1)
    assert res.returncode != 0 and "function broken: processingGuarantees" in res.stderr
    with pytest.raises(RestError) as err:
        rest(w1, "POST", f"/admin/v3/meshes/public/{ns}/half-valid", {"mesh": bad})
    assert err.value.status == 400 and "function broken" in err.value.reason
    with pytest.raises(RestError) as err:
        rest(w2, "POST", f"/admin/v3/meshes/{chain}", {"mesh": chain_doc})
    assert err.value.status == 409
    assert _mesh("list", "--tenant", "public", "--namespace", ns, url=w2) == ["exclaim-chain", "gen-pipeline"]
    assert "lonely" not in rest(w1, "GET", f"/admin/v3/functions/public/{ns}")

    # -- a member is the mesh's: not deleted or updated on its own ------------------------------------
    for path in (f"/admin/v3/functions/public/{ns}/first", f"/admin/v3/sources/public/{ns}/gen"):
        with pytest.raises(RestError) as err:
            rest(w2, "DELETE", path)
        assert err.value.status == 409 and "mesh public/" in err.value.reason

    # -- update: one added, one changed, one removed, the untouched never restarted ------------------------
    before_chain, before_pipeline = _starts(_status(w1, chain)), _starts(_status(w1, pipeline))
    chain_doc["functionInfos"][1]["userConfig"] = {"changed": True}
    chain_doc["functionInfos"].append(
        {
            "name": "third",
            "classname": "exclamation.ExclamationFunction",
            "inputs": [chain_out],
            "output": f"persistent://public/{ns}/chain-final",
            "subscriptionPosition": "Earliest",
        }
    )
    updated = _mesh("update", "-f", str(_write(chain_file, chain_doc)), url=w2)
    assert (
        updated["added"] == ["third"]
        and updated["changed"] == ["second"]
        and updated["unchanged"] == ["first"]
    )
    fm_doc["spec"]["functions"][0]["funcConfig"] = {"changed": True}
    sink = fm_doc["spec"]["sinks"][0]
    fm_doc["spec"]["sinks"] = [
        {**sink, "name": "store2", "sinkConfig": {**sink["sinkConfig"], "fileName": "b.txt"}}
    ]
    updated = _mesh("update", "-f", str(_write(fm_file, fm_doc)), url=w1)
    assert updated == {
        "version": 1,
        "warnings": [],
        "added": ["store2"],
        "changed": ["shout"],
        "removed": ["store"],
        "unchanged": ["gen"],
    }
    assert wait_until(lambda: len(_lines(out_dir / "b.txt")) == 30, timeout=90)
    assert wait_until(lambda: _ready(w1, chain) and _ready(w1, pipeline), timeout=60)
    after_chain, after_pipeline = _starts(_status(w1, chain)), _starts(_status(w1, pipeline))
    assert after_chain["first"] == before_chain["first"]
    assert after_pipeline["gen"] == before_pipeline["gen"]
    assert after_chain["second"] != before_chain["second"]  # changed: restarted with the new config
    produce(client, chain_in, [b"c"])
    finals = sorted(m.data() for m in consume(client, f"persistent://public/{ns}/chain-final", 3, timeout=60))
    assert finals == [b"a!!!", b"b!!!", b"c!!!"]
    assert f"public/{ns}/store" not in [
        f"public/{ns}/{n}" for n in rest(w1, "GET", f"/admin/v3/sinks/public/{ns}")
    ]

    # -- a worker SIGKILLed: every member runs again on the survivor -------------------------------------
    cluster2.kill(cluster2.workers[1])
    assert wait_until(lambda: len(rest(w1, "GET", "/admin/v2/worker/cluster")) == 1, timeout=60)
    for fqmn in (chain, pipeline):
        st = wait_until(lambda fqmn=fqmn: _ready(w1, fqmn), timeout=90)
        assert st, _status(w1, fqmn)
        assert {i["status"]["workerId"] for m in st["members"] for i in m["instances"]} == {"w1"}
    produce(client, chain_in, [b"d"])
    assert _seen(client, f"persistent://public/{ns}/chain-final", b"d!!!", timeout=60)
    # The killed worker comes back knowing both meshes (from the new leader's snapshot and the log).
    back = cluster2.start_worker("w2").url
    assert _mesh("list", "--tenant", "public", "--namespace", ns, url=back) == [
        "exclaim-chain",
        "gen-pipeline",
    ]
    got = _mesh("get", "--tenant", "public", "--namespace", ns, "--name", "exclaim-chain", url=back)
    assert [m["name"] for m in got["members"]] == ["first", "second", "third"] and got["version"] == 1

    # -- delete through the worker that does not run store2: every member and subscription gone ----------
    # Right after w2 is back, store2 moves there: the worker handling the delete (w1) runs none of it.
    # Removing a subscription is the job of the worker that ran the instance, once it has stopped.
    store2 = next(m for m in _status(w1, pipeline)["members"] if m["name"] == "store2")
    runners = {i["status"]["workerId"] for i in store2["instances"]}
    deleter = back if runners == {"w1"} else w1
    for name in ("exclaim-chain", "gen-pipeline"):
        _mesh("delete", "--tenant", "public", "--namespace", ns, "--name", name, url=deleter)
    assert _mesh("list", "--tenant", "public", "--namespace", ns, url=w1) == []
    for kind in ("functions", "sources", "sinks"):
        assert rest(w1, "GET", f"/admin/v3/{kind}/public/{ns}") == []
    assert wait_until(lambda: not any(k.startswith(f"public/{ns}/") for k in _assigned(w1)), timeout=30)
    for topic, member in (
        (chain_in, "first"),
        (chain_out, "third"),
        (f"persistent://public/{ns}/fm-loud", "store2"),
    ):
        sub = f"public/{ns}/{member}"
        assert wait_until(lambda t=topic, s=sub: not _subscription_kept(client, t, s), timeout=45), member


def _assigned(url: str) -> list[str]:
    return [key for keys in rest(url, "GET", "/admin/v2/worker/assignments").values() for key in keys]
