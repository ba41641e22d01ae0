"""The dashboard in a real Chromium, against a real two-worker cluster of the process runtime.

The page is driven as an operator would: it loads, an API token is pasted, a function created
with the CLI appears, its rate rises while messages flow, an instance killed with SIGKILL shows
its restart, and the restart button (with its confirmation) restarts an instance. A screenshot
is kept in the test's tmp dir and copied to tests/artifacts/dashboard.png.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulsar
import pytest
import yaml
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

import engine.examples.exclamation as exclamation
from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, RestError, WorkerProc, magnetar, new_cluster, rest, wait_until
from tests.cluster.test_cluster import create
from tests.cluster.test_process_runtime import children
from tests.mesh.documents import function_mesh

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-test-token"


@pytest.fixture(scope="module")
def dcluster(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("dcluster")), 2, ["--runtime", "process"])
    yield c
    c.stop_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _children(worker: WorkerProc, fqfn: str) -> dict[int, int]:
    """Instance id -> pid of the worker's instance processes running ``fqfn``."""
    return {iid: pid for (name, iid), pid in children(worker.proc.pid).items() if name == fqfn}


def _owner(cluster: Cluster, fqfn: str, iid: int) -> tuple[WorkerProc, int]:
    for w in cluster.live():
        pid = _children(w, fqfn).get(iid)
        if pid is not None:
            return w, pid
    raise AssertionError(f"no worker runs {fqfn}:{iid}")


def _cell(page: Page, key: str, field: str) -> Any:
    return page.locator(f'tr[data-key="{key}"] [data-field="{field}"]')


def _rate(page: Page, fqfn: str) -> float:
    text = page.locator(f'tr[data-component="{fqfn}"] [data-field="in-rate"]').inner_text()
    return float(text) if text not in ("", "—") else 0.0


class _Flow:
    """Sends messages at a steady pace on a thread until stopped (bounded in count and time)."""

    def __init__(self, client: pulsar.Client, topic: str, limit: int = 20000, seconds: float = 90) -> None:
        self._producer = client.create_producer(topic, block_if_queue_full=True, batching_enabled=True)
        self._stop = threading.Event()
        self._limit, self._seconds = limit, seconds
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self._seconds
        while not self._stop.is_set() and self.sent < self._limit and time.monotonic() < deadline:
            for _ in range(20):
                self._producer.send_async(f"m{self.sent}".encode(), None)
                self.sent += 1
            self._producer.flush()
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._producer.close()


def test_dashboard_shows_the_cluster_live_and_its_actions_work(
    dcluster: Cluster, client: pulsar.Client, browser: Browser, tmp_path: Path
) -> None:
    name = f"dash{uuid.uuid4().hex[:6]}"
    fqfn = f"public/default/{name}"
    create(dcluster, name, f"{name}-in", f"{name}-out", 2)

    page = browser.new_page(viewport={"width": 1700, "height": 1000})
    calls: list[Request] = []
    page.on(
        "request", lambda r: calls.append(r) if "/dashboard/api/" in r.url or "/admin/" in r.url else None
    )
    page.goto(f"{dcluster.workers[1].url}/dashboard?interval=500")
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")

    # The cluster and the function created through the CLI, both instances running.
    expect(page.locator("#workers tbody tr")).to_have_count(2, timeout=20000)
    leader = dcluster.leader()
    assert leader is not None
    expect(page.locator("#cluster-summary")).to_contain_text(f"leader: {leader['workerId']} (epoch")
    expect(page.locator(f'tr[data-worker="{leader["workerId"]}"]')).to_contain_text("leader")
    expect(page.locator(f'tr[data-component="{fqfn}"]')).to_contain_text("function", timeout=20000)
    for iid in (0, 1):
        expect(_cell(page, f"{fqfn}:{iid}", "state")).to_have_text("running", timeout=60000)

    # Its rate rises as messages flow, and the counters follow.
    assert _rate(page, fqfn) == 0.0
    flow = _Flow(client, f"{name}-in")
    try:
        assert wait_until(lambda: _rate(page, fqfn) > 50, timeout=40), _rate(page, fqfn)
        rising = _rate(page, fqfn)
        processed = page.locator(f'tr[data-component="{fqfn}"] [data-field="processed"]')
        assert wait_until(lambda: int(processed.inner_text().replace(",", "")) > 100, timeout=20)
        latency = _cell(page, f"{fqfn}:0", "latency").inner_text()
        assert latency != "—" and float(latency) > 0, latency

        # An instance killed from outside shows its restart and why it died.
        victim_worker, victim = _owner(dcluster, fqfn, 0)
        os.kill(victim, signal.SIGKILL)
        expect(_cell(page, f"{fqfn}:0", "restarts")).to_have_text("1", timeout=30000)
        expect(page.locator(f'tr[data-detail="{fqfn}:0"]')).to_contain_text("last failure", timeout=30000)
        expect(_cell(page, f"{fqfn}:0", "state")).to_have_text("running", timeout=60000)
        assert _children(victim_worker, fqfn).get(0) not in (None, victim)
        expect(_cell(page, f"{fqfn}:0", "worker")).to_have_text(victim_worker.worker_id)

        # The restart button asks first; cancelling does nothing, confirming restarts.
        owner, before = _owner(dcluster, fqfn, 1)
        button = page.locator(f'tr[data-key="{fqfn}:1"] button[data-action="restart"]')
        button.click()
        expect(page.locator("#confirm")).to_be_visible()
        expect(page.locator("#confirm-text")).to_have_text(f"Restart instance 1 of {fqfn}?")
        page.click("#confirm-cancel")
        expect(page.locator("#confirm")).to_be_hidden()
        assert _children(owner, fqfn).get(1) == before
        button.click()
        page.click("#confirm-ok")
        expect(page.locator("#banner")).to_contain_text(f"Restart of {fqfn} instance 1 done.", timeout=60000)
        assert wait_until(lambda: _children(owner, fqfn).get(1) not in (None, before), timeout=30)
        expect(_cell(page, f"{fqfn}:1", "state")).to_have_text("running", timeout=60000)
        assert wait_until(lambda: _rate(page, fqfn) > 0, timeout=30), "messages flow again"
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        flow.stop()
    print(f"\nin-rate while flowing: {rising:.0f}/s; {flow.sent} messages sent")

    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(shot, artifacts / "dashboard.png")
    assert shot.stat().st_size > 10000

    # Once the token is pasted, every call the page makes carries it.
    auth = [c.headers.get("authorization") for c in calls]
    first = auth.index(f"Bearer {TOKEN}")
    assert len(auth) - first > 5 and set(auth[first:]) == {f"Bearer {TOKEN}"}, auth
    assert any(c.method == "POST" and c.url.endswith(f"/{fqfn}/1/restart") for c in calls)
    page.close()


def test_dashboard_json_gathers_every_worker(dcluster: Cluster) -> None:
    name = f"dj{uuid.uuid4().hex[:6]}"
    fqfn = f"public/default/{name}"
    create(dcluster, name, f"{name}-in", f"{name}-out", 2)

    def both_running() -> dict[str, Any] | None:
        data = rest(dcluster.workers[0].url, "GET", "/dashboard/api/overview")
        (comp,) = [c for c in data["components"] if c["name"] == fqfn]
        return data if all(i["state"] == "running" for i in comp["instances"]) else None

    data = wait_until(both_running, timeout=60)
    assert data, rest(dcluster.workers[0].url, "GET", "/dashboard/api/overview")
    (comp,) = [c for c in data["components"] if c["name"] == fqfn]
    assert comp["kind"] == "function" and comp["parallelism"] == 2
    owners = {i["workerId"] for i in comp["instances"]}
    assert owners == {"w1", "w2"}, "one instance on each worker, both gathered by w1"
    assert sorted(w["workerId"] for w in data["cluster"]["workers"]) == ["w1", "w2"]
    assert all(w["reachable"] for w in data["cluster"]["workers"])
    assert data["cluster"]["epoch"] >= 1

    # Stopping an instance shows it stopped, with the reason.
    rest(dcluster.workers[0].url, "POST", f"/admin/v3/functions/{fqfn}/1/stop")

    def stopped() -> dict[str, Any] | None:
        d = rest(dcluster.workers[0].url, "GET", "/dashboard/api/overview")
        (c,) = [c for c in d["components"] if c["name"] == fqfn]
        return c["instances"][1] if c["instances"][1]["state"] == "stopped" else None

    row = wait_until(stopped, timeout=30)
    assert row and row["reason"] == "stopped by an operator"

    page = rest(dcluster.workers[0].url, "GET", "/dashboard")
    assert b"<title>Magnetar dashboard</title>" in page
    for asset in ("dashboard.js", "dashboard.css"):
        assert rest(dcluster.workers[0].url, "GET", f"/dashboard/static/{asset}")
    with pytest.raises(RestError, match="404"):
        rest(dcluster.workers[0].url, "GET", "/dashboard/static/..%2f..%2fsetup.py")


def test_dashboard_shows_a_mesh_with_its_members_condition_and_graph(
    dcluster: Cluster, browser: Browser, tmp_path: Path
) -> None:
    ns = dcluster.namespace.split("/")[1] + "-dm"
    fqmn = f"public/{ns}/gen-pipeline"
    shutil.copy(exclamation.__file__, tmp_path / "exclamation.py")
    (tmp_path / "sink").mkdir()
    doc = function_mesh(ns, str(tmp_path / "sink"))
    doc["spec"]["sources"][0]["sourceConfig"].update(shape="STRING", sizeBytes=8)
    mesh_file = tmp_path / "pipeline.yaml"
    mesh_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    w1 = dcluster.workers[0].url
    res = magnetar("mesh", "create", "-f", str(mesh_file), "--admin-url", w1, timeout=120)
    assert res.returncode == 0, res.stderr

    def mesh_view() -> dict[str, Any]:
        data = rest(w1, "GET", "/dashboard/api/overview")
        (view,) = [m for m in data["meshes"] if m["name"] == fqmn]
        return view  # type: ignore[no-any-return]

    assert wait_until(lambda: mesh_view()["state"] == "ready", timeout=90), mesh_view()
    # Every member runs in its own child process, the source too, and the data goes end to end.
    out = tmp_path / "sink" / "out.txt"
    assert wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 30, timeout=60)
    assert all(line.endswith("!") for line in out.read_text().splitlines())
    page = browser.new_page(viewport={"width": 1700, "height": 1400})
    page.goto(f"{dcluster.workers[1].url}/dashboard?interval=500")
    card = page.locator(f'div.mesh[data-mesh="{fqmn}"]')
    expect(card.locator('[data-field="mesh-state"]')).to_have_text("ready", timeout=90000)
    expect(card.locator('[data-field="condition"]')).to_have_text("MeshReady=True · AllMembersReady")
    for member, kind in (("gen", "source"), ("shout", "function"), ("store", "sink")):
        row = card.locator(f'tr[data-member="{member}"]')
        expect(row).to_contain_text(kind)
        expect(row.locator('[data-field="member-state"]')).to_have_text("ready")
        expect(row.locator('[data-field="member-instances"]')).to_have_text("1/1")
        # Each member is a component of its own kind, with its instance, marked as the mesh's.
        component = page.locator(f'tr[data-component="public/{ns}/{member}"]')
        expect(component.locator('[data-field="kind"]')).to_have_text(f"{kind} · mesh {fqmn}")
        expect(_cell(page, f"public/{ns}/{member}:0", "state")).to_have_text("running")
        # Its mesh stops and starts it; a restart is its own.
        buttons = page.locator(f'tr[data-key="public/{ns}/{member}:0"] button')
        expect(buttons).to_have_count(1)
        expect(buttons).to_have_attribute("data-action", "restart")

    # The graph is the mesh's own drawing, fetched with the page's credentials and shown inline.
    graph = card.locator("img.mesh-graph")
    expect(graph).to_have_attribute("src", re.compile(r"^data:image/svg\+xml"), timeout=20000)
    assert wait_until(lambda: graph.evaluate("img => img.complete && img.naturalWidth > 300"), timeout=20)
    svg = urllib.parse.unquote(str(graph.get_attribute("src")).split(",", 1)[1])
    served = rest(w1, "GET", f"/dashboard/api/meshes/{fqmn}/graph").decode()
    assert svg == served and all(f">{m}</text>" in svg for m in ("gen", "shout", "store")), svg
    shot = tmp_path / "dashboard-mesh.png"
    card.screenshot(path=str(shot))
    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(shot, artifacts / "dashboard-mesh.png")

    with pytest.raises(RestError, match="404"):
        rest(w1, "GET", f"/dashboard/api/meshes/public/{ns}/no-such-mesh/graph")
    with pytest.raises(RestError, match="400"):
        rest(w1, "GET", "/dashboard/api/meshes/public/bad%20ns/x/graph")

    # Deleted through the CLI: the mesh leaves the page with its members.
    res = magnetar("mesh", "delete", "-f", str(mesh_file), "--admin-url", w1, timeout=120)
    assert res.returncode == 0, res.stderr
    expect(card).to_have_count(0, timeout=30000)
    expect(page.locator(f'tr[data-component="public/{ns}/shout"]')).to_have_count(0, timeout=30000)
    page.close()


def test_drain_button_moves_a_workers_instances_after_confirmation(
    dcluster: Cluster, browser: Browser
) -> None:
    # Runs last in this module: the drained worker takes no instances afterwards.
    name = f"dd{uuid.uuid4().hex[:6]}"
    fqfn = f"public/default/{name}"
    create(dcluster, name, f"{name}-in", f"{name}-out", 2)
    page = browser.new_page(viewport={"width": 1700, "height": 1000})
    page.goto(f"{dcluster.workers[0].url}/dashboard?interval=500")
    for iid in (0, 1):
        expect(_cell(page, f"{fqfn}:{iid}", "state")).to_have_text("running", timeout=60000)
    page.locator('tr[data-worker="w2"] button[data-action="drain"]').click()
    expect(page.locator("#confirm-text")).to_have_text("Drain worker w2? Its instances move to the others.")
    page.click("#confirm-ok")
    expect(page.locator("#banner")).to_contain_text("Drain of w2: DrainCompleted", timeout=60000)
    expect(page.locator('tr[data-worker="w2"] [data-field="health"]')).to_have_text("draining", timeout=20000)
    for iid in (0, 1):
        expect(_cell(page, f"{fqfn}:{iid}", "worker")).to_have_text("w1", timeout=30000)
        expect(_cell(page, f"{fqfn}:{iid}", "state")).to_have_text("running", timeout=60000)
    assigned = rest(dcluster.workers[0].url, "GET", "/admin/v2/worker/assignments")
    assert assigned.get("w2", []) == []
    page.close()
