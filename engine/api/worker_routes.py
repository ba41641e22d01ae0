"""``/admin/v2/worker``, ``/admin/v2/worker-stats``, ``/metrics`` and ``/initialized``."""

from __future__ import annotations

import time
import weakref
from typing import Any
from urllib.parse import urlparse

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from engine.api.errors import http_error
from engine.runtime.metrics import InstanceCollector
from engine.worker.worker import Worker

__all__ = ["add_worker_routes"]


def _worker(request: web.Request) -> Worker:
    return request.app["worker"]


def _info(member: dict[str, Any]) -> dict[str, Any]:
    parsed = urlparse(member["url"])
    return {
        "workerId": member["workerId"],
        "workerHostname": parsed.hostname,
        "port": parsed.port,
        "url": member["url"],
    }


async def cluster(request: web.Request) -> web.Response:
    worker = _worker(request)
    members = worker.table.members
    if worker.election.is_leader:
        members = [m.to_json() for m in worker.election.live_members()]
    return web.json_response([_info(m) for m in members])


async def cluster_leader(request: web.Request) -> web.Response:
    leader = _worker(request).table.leader
    if not leader:
        raise http_error(503, "no leader has been elected yet")
    return web.json_response({**_info(leader), "epoch": leader.get("epoch")})


async def leader_ready(request: web.Request) -> web.Response:
    """Whether the leader is elected and has taken office (Pulsar answers true/false)."""
    worker = _worker(request)
    return web.json_response(bool(worker.table.leader) and worker.initialized)


async def assignments(request: web.Request) -> web.Response:
    out: dict[str, list[str]] = {}
    for key, a in sorted(_worker(request).table.assignments.items()):
        out.setdefault(a.workerId, []).append(key)
    return web.json_response(out)


async def _on_leader(request: web.Request, method: str, path: str) -> web.Response | None:
    """Forward to the leader unless this worker leads; returns the leader's answer."""
    worker = _worker(request)
    if worker.election.is_leader:
        return None
    url = worker.leader_url()
    if not url:
        raise http_error(503, "no leader has been elected yet")
    assert worker.http is not None
    async with worker.http.request(method, f"{url}{path}") as resp:
        return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")


async def rebalance(request: web.Request) -> web.Response:
    forwarded = await _on_leader(request, "PUT", request.path_qs)
    if forwarded is not None:
        return forwarded
    worker = _worker(request)
    if len(worker.election.live_members()) < 2:
        raise http_error(400, "rebalance needs at least 2 workers")
    plan = await worker.schedule(rebalance=True)
    return web.json_response({"moved": plan.moved if plan else 0})


async def drain_leader(request: web.Request) -> web.Response:
    forwarded = await _on_leader(request, request.method, request.path_qs)
    if forwarded is not None:
        return forwarded
    worker = _worker(request)
    target = request.query.get("workerId")
    if not target:
        raise http_error(400, "workerId: the worker to drain is required")
    members = {m.worker_id for m in worker.election.live_members()}
    if request.method == "GET":
        if target not in worker.duties.draining:
            return web.json_response({"status": "DrainNotInProgress"})
        left = sum(1 for a in worker.table.assignments.values() if a.workerId == target)
        return web.json_response({"status": "DrainCompleted" if left == 0 else "DrainInProgress"})
    if target not in members:
        raise http_error(404, f"workerId: {target!r} is not a member of the cluster")
    if len(members - {target} - worker.duties.draining) < 1:
        raise http_error(400, "drain would leave no worker to run the instances")
    t0 = time.perf_counter()
    worker.duties.draining.add(target)
    plan = await worker.schedule()
    worker.duties.last_drain_ms = (time.perf_counter() - t0) * 1000
    return web.json_response({"status": "DrainCompleted", "moved": len(plan.writes) if plan else 0})


async def drain_self(request: web.Request) -> web.Response:
    worker = _worker(request)
    path = f"/admin/v2/worker/leader/drain?workerId={worker.config.worker_id}"
    url = worker.leader_url()
    if url is None:
        raise http_error(503, "no leader has been elected yet")
    assert worker.http is not None
    async with worker.http.request(request.method, f"{url}{path}") as resp:
        return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")


async def functions_metrics(request: web.Request) -> web.Response:
    worker = _worker(request)
    out = []
    for inst, snap in await worker.runtime.snapshots():
        out.append(
            {
                "name": inst.spec.fqfn,
                "instanceId": inst.instance_id,
                "metrics": {
                    "receivedTotal": snap["received"],
                    "processedSuccessfullyTotal": snap["processed_ok"],
                    "systemExceptionsTotal": snap["system_exceptions"],
                    "userExceptionsTotal": snap["user_exceptions"],
                    "avgProcessLatency": snap["avg_latency_ms"],
                    "lastInvocation": snap["last_invocation_ms"],
                    "1min": {
                        "receivedTotal": snap["received_1min"],
                        "processedSuccessfullyTotal": snap["processed_ok_1min"],
                        "systemExceptionsTotal": snap["system_exceptions_1min"],
                        "userExceptionsTotal": snap["user_exceptions_1min"],
                        "avgProcessLatency": snap["avg_latency_ms_1min"],
                    },
                    "userMetrics": {k: v[0] / v[1] if v[1] else 0.0 for k, v in snap["user_metrics"].items()},
                },
            }
        )
    return web.json_response(out)


def _worker_metrics(worker: Worker) -> list[dict[str, Any]]:
    registry = worker.metadata.registry
    metrics = {
        "pulsar_function_worker_start_up_time_ms": worker.startup_ms,
        "pulsar_function_worker_instance_count": len(worker.runtime.slots),
        "pulsar_function_worker_is_leader": 1 if worker.election.is_leader else 0,
        "pulsar_function_worker_total_function_count": len(registry),
        "pulsar_function_worker_total_expected_instance_count": len(worker.table.assignments),
        "pulsar_function_worker_schedule_execution_time_total_ms": worker.duties.last_schedule_ms,
        # Records skipped because they could not be decoded (never a crash).
        "magnetar_worker_undecodable_metadata_records": worker.metadata.undecodable_records,
        "magnetar_worker_undecodable_assignment_records": worker.undecodable_assignments,
        "magnetar_worker_event_loop_lag_ms": worker.loop_lag.recent_max_ms,
        "magnetar_worker_event_loop_lag_max_ms": worker.loop_lag.max_ms,
        # The data dir's free space, and 1 while it is below the headroom kept for the broker.
        "magnetar_worker_data_dir_free_bytes": worker.disk.free_bytes(),
        "magnetar_worker_data_dir_low_space": 1 if worker.disk.low() else 0,
        "pulsar_function_worker_schedule_strategy_execution_time_ms": worker.duties.last_schedule_strategy_ms,
        "pulsar_function_worker_rebalance_execution_time_total_ms": worker.duties.last_rebalance_ms,
        "pulsar_function_worker_rebalance_strategy_execution_time_ms": (
            worker.duties.last_rebalance_strategy_ms
        ),
        "pulsar_function_worker_stop_instance_process_time_ms": worker.runtime.last_stop_ms,
        "pulsar_function_worker_start_instance_process_time_ms": worker.runtime.last_start_ms,
        "pulsar_function_worker_drain_execution_time_total_ms": worker.duties.last_drain_ms,
    }
    dimensions = {"cluster": worker.config.cluster_name, "workerId": worker.config.worker_id}
    return [{"metrics": metrics, "dimensions": dimensions}]


async def worker_metrics(request: web.Request) -> web.Response:
    return web.json_response(_worker_metrics(_worker(request)))


_COLLECTORS: weakref.WeakKeyDictionary[Worker, tuple[CollectorRegistry, InstanceCollector]] = (
    weakref.WeakKeyDictionary()
)


async def prometheus(request: web.Request) -> web.Response:
    worker = _worker(request)
    known = _COLLECTORS.get(worker)
    if known is None:  # one collector per worker: it remembers the exceptions it reported
        collector = InstanceCollector(list, cluster=worker.config.cluster_name)
        registry = CollectorRegistry()
        registry.register(collector)
        known = _COLLECTORS[worker] = (registry, collector)
    registry, collector = known
    # Snapshots are gathered concurrently, off the loop's critical path; rendering reads none.
    collector.use_snapshots(await worker.runtime.snapshots())
    lines = [generate_latest(registry).decode()]
    labels = f'cluster="{worker.config.cluster_name}",workerId="{worker.config.worker_id}"'
    for name, value in _worker_metrics(worker)[0]["metrics"].items():
        lines.append(f"# TYPE {name} gauge\n{name}{{{labels}}} {float(value)}\n")
    return web.Response(text="".join(lines), content_type="text/plain")


async def initialized(request: web.Request) -> web.Response:
    if not _worker(request).initialized:
        raise http_error(
            503, "Function worker service is not done initializing. Please try again in a little while."
        )
    return web.Response(status=204)


def add_worker_routes(app: web.Application) -> None:
    """Mount the worker and metrics routes."""
    base = "/admin/v2/worker"
    app.router.add_get(base + "/cluster", cluster)
    app.router.add_get(base + "/cluster/leader", cluster_leader)
    app.router.add_get(base + "/cluster/leader/ready", leader_ready)
    app.router.add_get(base + "/assignments", assignments)
    app.router.add_put(base + "/rebalance", rebalance)
    app.router.add_put(base + "/leader/drain", drain_leader)
    app.router.add_get(base + "/leader/drain", drain_leader)
    app.router.add_put(base + "/drain", drain_self)
    app.router.add_get(base + "/drain", drain_self)
    app.router.add_get("/admin/v2/worker-stats/functionsmetrics", functions_metrics)
    app.router.add_get("/admin/v2/worker-stats/metrics", worker_metrics)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/initialized", initialized)
