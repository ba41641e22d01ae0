"""A mesh's status as one unit (MeshReady over member conditions, backlog per topic) and its drawings."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from engine.mesh import plan_mesh
from engine.mesh.model import MemberKind
from engine.mesh.render import render
from engine.mesh.status import MeshSampler, member_condition, mesh_status
from tests.mesh.documents import function_mesh, pip66


def _running(received: int = 0, processed: int = 0, written: int = 0) -> dict[str, Any]:
    return {
        "running": True,
        "error": "",
        "numRestarts": 0,
        "numReceived": received,
        "numSuccessfullyProcessed": processed,
        "numWritten": written,
    }


def test_member_conditions() -> None:
    assert member_condition(MemberKind.FUNCTION, [_running()])["status"] == "True"
    pending = member_condition(
        MemberKind.SINK, [_running(), {"running": False, "error": "", "numRestarts": 0}]
    )
    assert (
        pending["state"] == "pending"
        and pending["condition"] == "SinkReady"
        and "1 of 2" in pending["reason"]
    )
    failing = member_condition(MemberKind.SOURCE, [{"running": False, "error": "boom", "numRestarts": 2}])
    assert failing["state"] == "error" and "boom" in failing["reason"]
    assert member_condition(MemberKind.FUNCTION, [])["state"] == "pending"


def test_mesh_status_backlog_rate_and_bottleneck() -> None:
    plan = plan_mesh(function_mesh("ns", "/tmp/out"))
    sampler = MeshSampler()
    statuses = {
        "gen": [_running(written=100)],
        "shout": [_running(received=90, processed=40)],
        "store": [_running(received=40)],
    }
    st = mesh_status("public/ns/gen-pipeline", 3, plan.graph, statuses, sampler)
    assert st["state"] == "ready" and st["condition"]["condition"] == "MeshReady"
    assert st["condition"]["status"] == "True" and st["version"] == 3
    topics = {t["topic"].rsplit("/", 1)[1]: t for t in st["topics"]}
    assert topics["fm-generated"]["backlog"] == 10 and topics["fm-loud"]["backlog"] == 0
    assert topics["fm-generated"]["consumers"][0]["rate"] is None  # the first sample
    assert st["bottleneck"] == "shout"
    shout = next(m for m in st["members"] if m["name"] == "shout")
    assert shout["upstream"] == ["gen"] and shout["downstream"] == ["store"]
    statuses["shout"] = [{**_running(received=95), "running": False, "error": "died", "numRestarts": 1}]
    st = mesh_status("public/ns/gen-pipeline", 3, plan.graph, statuses, sampler)
    assert st["state"] == "error" and st["condition"]["reason"] == "MembersFailing: shout"


def test_sampler_rate() -> None:
    s = MeshSampler()
    assert s.rate("k", 10, now=1.0) is None
    assert s.rate("k", 30, now=3.0) == 10.0
    assert s.rate("k", 5, now=4.0) is None  # counters restarted


def test_graph_as_text_dot_and_svg() -> None:
    plan = plan_mesh(pip66("ns"))
    text = render("public/ns/exclaim-chain", plan.graph)
    assert "function first" in text and "-> ns/chain-mid -> function second" in text.replace("public/", "")
    assert "(from outside the mesh)" in text and "(read outside the mesh)" in text
    dot = render("public/ns/exclaim-chain", plan.graph, "dot")
    assert dot.startswith('digraph "public/ns/exclaim-chain"') and '"first" -> "second"' in dot
    svg = render("public/ns/exclaim-chain", plan.graph, "svg")
    root = ET.fromstring(svg)  # well-formed
    assert root.tag.endswith("svg") and len([e for e in root.iter() if e.tag.endswith("rect")]) == 2
    assert len([e for e in root.iter() if e.tag.endswith("line")]) == 1
