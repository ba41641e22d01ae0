"""``fuse: true``: a chain of functions stored and run as one member, without its intermediate topics."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pulsar
import pytest
import yaml

import engine.examples.exclamation as exclamation
from engine.broker import EmbeddedBroker
from engine.function.loader import add_code_paths, load_function
from engine.mesh import MeshError, plan_mesh
from engine.mesh.fused import FUSED_CLASS, STAGES_KEY, FusedChain
from tests.cluster.conftest import magnetar, new_cluster, rest, wait_until
from tests.integration.harness import consume, produce
from tests.mesh.documents import pip66


def test_a_fused_chain_is_one_member_with_the_first_input_and_the_last_output() -> None:
    doc = {**pip66("ns"), "fuse": True}
    plan = plan_mesh(doc)
    assert [m.name for m in plan.members] == ["first", "second"]
    assert [m.name for m in plan.stored] == ["first-fused"]
    fused = plan.stored[0].function
    assert fused is not None and fused.class_name == FUSED_CLASS
    assert [i.topic for i in fused.inputs] == ["persistent://public/ns/chain-in"]
    assert fused.output == "persistent://public/ns/chain-out"
    assert fused.subscription_name == plan.members[0].function.subscription_name  # type: ignore[union-attr]
    assert fused.user_config[STAGES_KEY] == ["exclamation.ExclamationFunction"] * 2
    assert plan.stored_graph.internal_topics() == []


def test_a_chain_that_cannot_be_fused_is_rejected_naming_why() -> None:
    doc = {**pip66("ns"), "fuse": True}
    doc["functionInfos"][1]["py"] = "other.py"
    with pytest.raises(MeshError, match="one package"):
        plan_mesh(doc)
    doc = {**pip66("ns"), "fuse": ["first"]}
    with pytest.raises(MeshError, match="at least two"):
        plan_mesh(doc)


def test_the_fused_class_loaded_with_a_package_keeps_the_engines_modules(tmp_path: Path) -> None:
    # A runtime loads a fused member's class with its stages' package as code path; the
    # engine's modules must stay as they are (not be imported a second time).
    shutil.copy(exclamation.__file__, tmp_path / "exclamation.py")
    before = {name: sys.modules[name] for name in ("engine", "engine.config", "engine.mesh.fused")}
    loaded = load_function(FUSED_CLASS, [str(tmp_path)])
    assert {name: sys.modules[name] for name in before} == before
    assert type(loaded.target) is FusedChain


class _Context:
    """The one Context call the fused function makes (a unit test of pure logic)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def get_user_config_value(self, key: str) -> Any:
        return self.config.get(key)


def test_the_fused_function_runs_every_stage_in_turn(tmp_path: Path) -> None:
    (tmp_path / "stages.py").write_text(
        "def double(x):\n    return x * 2\n\n"
        "def drop_odd(x):\n    return None if x % 2 else x\n\n"
        "class Plus:\n    def process(self, x, context):\n"
        "        return x + context.get_user_config_value('n')\n"
    )
    add_code_paths([str(tmp_path)])
    fused = load_function(FUSED_CLASS)
    context = _Context({STAGES_KEY: ["stages.Plus", "stages.drop_odd", "stages.double"], "n": 1})
    assert fused.pass_context
    assert fused.call(3, context) == 8
    assert fused.call(2, context) is None  # a stage's None ends the chain


def test_a_fused_mesh_carries_data_without_writing_its_middle_topic(
    broker: EmbeddedBroker, client: pulsar.Client, tmp_path: Path
) -> None:
    (tmp_path / "c").mkdir()
    cluster = new_cluster(broker, str(tmp_path / "c"), 1)
    try:
        ns = cluster.namespace.split("/")[1] + "-fuse"
        shutil.copy(exclamation.__file__, tmp_path / "exclamation.py")
        (tmp_path / "mesh.yaml").write_text(yaml.safe_dump({**pip66(ns), "fuse": True}))
        url = cluster.workers[0].url
        res = magnetar("mesh", "create", "-f", str(tmp_path / "mesh.yaml"), "--admin-url", url)
        assert res.returncode == 0, res.stderr
        assert rest(url, "GET", f"/admin/v3/functions/public/{ns}") == ["first-fused"]
        produce(client, f"persistent://public/{ns}/chain-in", [b"x", b"y"])
        got = consume(client, f"persistent://public/{ns}/chain-out", 2, timeout=60)
        assert sorted(m.data() for m in got) == [b"x!!", b"y!!"]
        assert consume(client, f"persistent://public/{ns}/chain-mid", 1, timeout=2) == []
        st = wait_until(
            lambda: (
                (s := rest(url, "GET", f"/admin/v3/meshes/public/{ns}/exclaim-chain/status"))["state"]
                == "ready"
                and s
            )
        )
        assert st and [m["name"] for m in st["members"]] == ["first-fused"]
    finally:
        cluster.stop_all()
