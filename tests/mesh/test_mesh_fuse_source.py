"""``fuse`` on a chain headed by a source: source -> stages -> sink in one instance, with no topic at all."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pulsar
import pytest
import yaml

import engine.examples.exclamation as exclamation
from engine.broker import EmbeddedBroker
from engine.hotpath import HotPath
from engine.instance.options import InstanceOptions
from engine.instance.secrets import make_secrets_provider
from engine.io.details import build_connector_instance
from engine.mesh import MeshError, plan_mesh
from engine.mesh.fused_instance import FusedSourceInstance
from engine.mesh.fused_source import chain_of
from engine.mesh.model import MemberKind
from engine.state import open_state_store
from tests.cluster.conftest import RestError, magnetar, new_cluster, rest, wait_until
from tests.integration.harness import consume

# A source that reads each failed record again, and stages with per-stage user config.
_STAGES = '''
import time
from engine.io.api import Record, Sink, Source


class RetryingSource(Source):
    def open(self, config, context):
        self.todo = list(range(int(config["count"])))
        self.acked = []
        self.failed = []

    def _record(self, n):
        return Record(f"r{n}", key=f"k{n}", ack=lambda: self.acked.append(n),
                      fail=lambda reason: (self.failed.append((n, reason)), self.todo.append(n)))

    def read(self):
        if not self.todo:
            time.sleep(0.01)
            return None
        batch, self.todo = self.todo[:40], self.todo[40:]
        return [self._record(n) for n in batch]


class FlakySink(Sink):
    """Raises on its first write; fails k5 the first time it sees it; keeps what it wrote."""

    def open(self, config, context):
        self.writes = 0
        self.failed_once = False
        self.lines = []

    def write(self, records):
        self.writes += 1
        if self.writes == 1:
            raise OSError("the disk went away")
        for r in records:
            if r.key == "k5" and not self.failed_once:
                self.failed_once = True
                r.fail("k5 refused once")
                continue
            self.lines.append((r.key, r.value, r.data))
            r.ack()


class Flaky:
    """Raises the first time it sees a multiple of 7; appends its stage's suffix."""

    def __init__(self):
        self.seen = set()

    def process(self, value, context):
        n = int(value[1:])
        if n % 7 == 0 and n not in self.seen:
            self.seen.add(n)
            raise ValueError(f"first try of {value}")
        return value + context.get_user_config_value("suffix")


class DropThrees:
    """Drops values ending in 3; appends its own stage's suffix."""

    def process(self, value, context):
        if value.split("-")[0].endswith("3"):
            return None
        context.incr_counter("kept", 1)
        return value + context.get_user_config_value("suffix")
'''


def _doc(ns: str, package: str, out_dir: str, source: dict[str, Any], fuse: Any = True) -> dict[str, Any]:
    gen, mid, out = (f"persistent://public/{ns}/{t}" for t in ("gen", "mid", "out"))

    def function(name: str, cls: str, inp: str, output: str, suffix: str) -> dict[str, Any]:
        return {
            "name": name,
            "tenant": "public",
            "namespace": ns,
            "className": cls,
            "python": {"py": package},
            "input": {"topics": [inp]},
            "output": {"topic": output},
            "subscriptionPosition": "earliest",
            "funcConfig": {"suffix": suffix},
        }

    return {
        "apiVersion": "compute.functionmesh.io/v1alpha1",
        "kind": "FunctionMesh",
        "metadata": {"name": "fused-pipeline"},
        "spec": {
            "fuse": fuse,
            "sources": [
                {"name": "gen", "tenant": "public", "namespace": ns, "output": {"topic": gen}, **source}
            ],
            "functions": [
                function("one", "fusechain_stages.Flaky", gen, mid, "-a"),
                function("two", "fusechain_stages.DropThrees", mid, out, "-b"),
            ],
            "sinks": [
                {
                    "name": "store",
                    "tenant": "public",
                    "namespace": ns,
                    "sinkType": "file",
                    "input": {"topics": [out]},
                    "sinkConfig": {"outputDirectory": out_dir, "fileName": "out.txt"},
                }
            ],
        },
    }


def _retrying(package: str, count: int) -> dict[str, Any]:
    return {
        "className": "fusechain_stages.RetryingSource",
        "python": {"py": package},
        "sourceConfig": {"count": count},
    }


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_fuse_true_takes_in_the_source_and_the_sink_as_one_source_member(tmp_path: Path) -> None:
    plan = plan_mesh(_doc("ns", "stages.py", str(tmp_path), _retrying("stages.py", 5)))
    assert [m.name for m in plan.members] == ["gen", "one", "two", "store"]
    assert [(m.name, m.kind) for m in plan.stored] == [("gen-fused", MemberKind.SOURCE)]
    assert plan.stored_graph.internal_topics() == [] and plan.stored_graph.edges == []
    chain = chain_of(plan.stored[0].details)
    assert chain is not None
    assert [(s["name"], s["userConfig"]) for s in chain["stages"]] == [
        ("one", {"suffix": "-a"}),
        ("two", {"suffix": "-b"}),
    ]
    assert chain["sink"]["sinkType"] == "file" and chain["sink"]["configs"]["fileName"] == "out.txt"
    # The same chain named explicitly; and the functions alone keep today's function member.
    explicit = plan_mesh(
        _doc("ns", "stages.py", str(tmp_path), _retrying("stages.py", 5), ["gen", "one", "two", "store"])
    )
    assert explicit.stored[0].details == plan.stored[0].details
    functions = plan_mesh(_doc("ns", "stages.py", str(tmp_path), _retrying("stages.py", 5), ["one", "two"]))
    assert [(m.name, m.kind) for m in functions.stored] == [
        ("gen", MemberKind.SOURCE),
        ("one-fused", MemberKind.FUNCTION),
        ("store", MemberKind.SINK),
    ]


def test_a_source_chain_without_a_sink_publishes_the_last_stage_output(tmp_path: Path) -> None:
    doc = _doc("ns", "stages.py", str(tmp_path), _retrying("stages.py", 5), ["gen", "one", "two"])
    plan = plan_mesh(doc)
    fused = plan.stored[0]
    assert fused.name == "gen-fused" and fused.source is not None
    assert fused.source.destination_topic == "persistent://public/ns/out"
    assert [(e.producer, e.consumer) for e in plan.stored_graph.edges] == [("gen-fused", "store")]


def test_a_source_chain_that_cannot_be_fused_is_rejected_naming_why(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="a sink only at the end of a chain that starts with a source"):
        plan_mesh(_doc("ns", "stages.py", str(tmp_path), _retrying("stages.py", 5), ["one", "two", "store"]))
    with pytest.raises(MeshError, match="a source and at least one function"):
        plan_mesh(_doc("ns", "stages.py", str(tmp_path), _retrying("stages.py", 5), ["gen", "store"]))
    doc = _doc("ns", "stages.py", str(tmp_path), _retrying("other.py", 5))
    with pytest.raises(MeshError, match="one package"):
        plan_mesh(doc)
    doc = _doc("ns", "stages.py", str(tmp_path), _retrying("stages.py", 5))
    doc["spec"]["sinks"][0]["processingGuarantee"] = "effectively_once"
    with pytest.raises(MeshError, match="no EFFECTIVELY_ONCE sink"):
        plan_mesh(doc)


def test_a_fused_source_chain_acks_after_the_sink_and_retries_what_a_stage_failed(
    hot: HotPath, client: pulsar.Client, tmp_path: Path
) -> None:
    package = tmp_path / "fusechain_stages.py"
    package.write_text(_STAGES)
    count = 200
    plan = plan_mesh(_doc("ns", str(package), str(tmp_path / "out"), _retrying(str(package), count)))
    store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    inst = build_connector_instance(
        plan.stored[0].details,
        str(package),
        0,
        client,
        hot,
        store,
        make_secrets_provider(None),
        InstanceOptions(),
        str(tmp_path / "data"),
    )
    assert isinstance(inst, FusedSourceInstance)
    inst.start()
    try:
        source: Any = inst.source
        wait_until(lambda: len(source.acked) == count and not source.todo, timeout=30)
    finally:
        inst.stop()
    sevens = [n for n in range(count) if n % 7 == 0]
    assert sorted(source.acked) == list(range(count))  # each record acked exactly once
    assert sorted(n for n, _ in source.failed) == sevens  # failed once by the stage, then read again
    assert all("stage one raised ValueError" in reason for _, reason in source.failed)
    expected = sorted(f"r{n}-a-b" for n in range(count) if not str(n).endswith("3"))
    assert sorted(_lines(tmp_path / "out" / "out.txt")) == expected  # per-stage suffixes, no duplicates
    status = inst.status()
    assert status["numReceivedFromSource"] == count + len(sevens)
    assert status["numWritten"] == len(expected)
    assert status["numSystemExceptions"] == 0
    assert inst.snapshot()["user_exceptions"] == len(sevens)  # a stage's raise is the user's exception
    # The stages' state is the fused member's, committed by its loop.
    assert store.get_counter("public/ns/gen-fused", "kept") == len(expected)
    store.close()


def test_a_fused_sink_that_raises_or_fails_fails_its_source_records(
    hot: HotPath, client: pulsar.Client, tmp_path: Path
) -> None:
    package = tmp_path / "fusechain_stages.py"
    package.write_text(_STAGES)
    count = 100
    doc = _doc("ns", str(package), str(tmp_path / "out"), _retrying(str(package), count))
    sink_doc = doc["spec"]["sinks"][0]
    del sink_doc["sinkType"]
    sink_doc.update(className="fusechain_stages.FlakySink", python={"py": str(package)})
    plan = plan_mesh(doc)
    assert [m.name for m in plan.stored] == ["gen-fused"]
    store = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    inst = build_connector_instance(
        plan.stored[0].details,
        str(package),
        0,
        client,
        hot,
        store,
        make_secrets_provider(None),
        InstanceOptions(),
        str(tmp_path / "data"),
    )
    assert isinstance(inst, FusedSourceInstance)
    inst.start()
    try:
        source: Any = inst.source
        wait_until(lambda: len(source.acked) == count and not source.todo, timeout=30)
    finally:
        inst.stop()
    assert sorted(source.acked) == list(range(count))
    reasons = [reason for _, reason in source.failed]
    assert any("FlakySink.write failed: OSError: the disk went away" in r for r in reasons)
    assert [n for n, r in source.failed if r == "k5 refused once"] == [5]
    sink: Any = inst.sink
    expected = {f"r{n}-a-b" for n in range(count) if not str(n).endswith("3")}
    assert sorted(v for _, v, _ in sink.lines) == sorted(expected)  # every one once
    assert all(key == value.split("-")[0].replace("r", "k") for key, value, _ in sink.lines)
    assert all(data == value.encode() for _, value, data in sink.lines)
    store.close()


def test_a_fused_generator_to_file_mesh_delivers_every_record_once_with_no_topic(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1)
    try:
        ns = cluster.namespace.split("/")[1] + "-fusesrc"
        shutil.copy(exclamation.__file__, tmp_path / "exclamation.py")
        count = 500
        doc = _doc(
            ns,
            "exclamation.py",
            str(tmp_path / "out"),
            {
                "sourceType": "data-generator",
                "sourceConfig": {"count": count, "shape": "STRING", "sizeBytes": 8},
            },
        )
        for f in doc["spec"]["functions"]:
            f["className"] = "exclamation.ExclamationFunction"
        url = cluster.workers[0].url
        doc["spec"]["sinks"][0]["sinkType"] = "no-such-sink"  # checked although it runs inside the source
        (tmp_path / "mesh.yaml").write_text(yaml.safe_dump(doc))
        res = magnetar("mesh", "create", "-f", str(tmp_path / "mesh.yaml"), "--admin-url", url)
        assert res.returncode != 0 and "no-such-sink" in res.stderr, res.stderr
        assert rest(url, "GET", f"/admin/v3/sources/public/{ns}") == []  # all or nothing
        doc["spec"]["sinks"][0]["sinkType"] = "file"
        (tmp_path / "mesh.yaml").write_text(yaml.safe_dump(doc))
        res = magnetar("mesh", "create", "-f", str(tmp_path / "mesh.yaml"), "--admin-url", url)
        assert res.returncode == 0, res.stderr
        assert rest(url, "GET", f"/admin/v3/sources/public/{ns}") == ["gen-fused"]
        assert rest(url, "GET", f"/admin/v3/sinks/public/{ns}") == []
        out = tmp_path / "out" / "out.txt"
        assert wait_until(lambda: len(_lines(out)) >= count, timeout=60)
        lines = _lines(out)
        assert len(lines) == count and len(set(lines)) == count
        assert all(line.endswith("!!") for line in lines)
        assert sorted(int(line.split(":")[0]) for line in lines) == list(range(count))
        for t in ("gen", "mid", "out"):  # no intermediate topic is written
            assert consume(client, f"persistent://public/{ns}/{t}", 1, timeout=1) == []
        st = wait_until(
            lambda: (
                (s := rest(url, "GET", f"/admin/v3/meshes/public/{ns}/fused-pipeline/status"))["state"]
                == "ready"
                and s
            )
        )
        assert st and [m["name"] for m in st["members"]] == ["gen-fused"]
        got = rest(url, "GET", f"/admin/v3/meshes/public/{ns}/fused-pipeline")
        assert "gen-fused" in str(got)
        with pytest.raises(RestError) as err:
            rest(url, "DELETE", f"/admin/v3/sources/public/{ns}/gen-fused")
        assert err.value.status == 409 and "mesh public/" in err.value.reason
        res = magnetar(
            "mesh",
            "delete",
            "--tenant",
            "public",
            "--namespace",
            ns,
            "--name",
            "fused-pipeline",
            "--admin-url",
            url,
        )
        assert res.returncode == 0, res.stderr
        assert wait_until(lambda: rest(url, "GET", f"/admin/v3/sources/public/{ns}") == [])
    finally:
        cluster.stop_all()
