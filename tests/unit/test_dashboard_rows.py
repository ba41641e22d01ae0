"""How the dashboard names an instance's state, from the runtime's slot (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.dashboard import instance_state, static_file
from engine.proto import Function_pb2 as pb
from engine.runtime.manager import InstanceSlot, RuntimeManager


@dataclass
class FakeInstance:
    alive: bool
    failure_text: str = ""

    def is_alive(self) -> bool:
        return self.alive


def slot(**kw: object) -> InstanceSlot:
    s = InstanceSlot("public/default/f:0", pb.FunctionMetaData())
    for k, v in kw.items():
        setattr(s, k, v)
    return s


MAX = RuntimeManager.MAX_BACKOFF


def test_states() -> None:
    assert instance_state(slot(instance=FakeInstance(True)), MAX) == ("running", "")
    stalled = "in process() for 12 s"
    assert instance_state(slot(instance=FakeInstance(True)), MAX, stalled=stalled) == ("stuck", stalled)
    assert instance_state(slot(), MAX) == ("starting", "")
    assert instance_state(slot(instance=FakeInstance(False, "exit code 3")), MAX) == (
        "crashed",
        "exit code 3",
    )
    restarting = slot(failure="killed by SIGKILL", next_start=12.0, backoff=2.0)
    assert instance_state(restarting, MAX, now=10.0) == ("restarting", "killed by SIGKILL (next try in 2s)")
    looping = slot(failure="ImportError: no module x", next_start=70.0, backoff=MAX)
    assert instance_state(looping, MAX, now=10.0) == (
        "crashed",
        "ImportError: no module x (failing repeatedly; next try in 60s)",
    )


def test_a_stopped_instance_is_stopped_whatever_else() -> None:
    md = pb.FunctionMetaData()
    md.instanceStates[0] = pb.STOPPED
    s = InstanceSlot("public/default/f:0", md, failure="old failure")
    assert instance_state(s, MAX) == ("stopped", "stopped by an operator")


def test_static_files_are_only_the_pages_own() -> None:
    page = static_file("index.html")
    assert page is not None and page[1] == "text/html" and b"dashboard.js" in page[0]
    assert static_file("dashboard.js") is not None and static_file("dashboard.css") is not None
    assert static_file("../rows.py") is None and static_file("rows.py") is None
