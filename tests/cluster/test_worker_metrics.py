"""The worker's own metrics, scraped from /metrics, with Apache's names and the ``cluster`` label."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, new_cluster, rest, wait_until
from tests.cluster.test_cluster import all_running, create

PREFIX = "pulsar_function_worker_"
EXISTING = (
    "start_up_time_ms",
    "instance_count",
    "is_leader",
    "total_function_count",
    "total_expected_instance_count",
    "schedule_execution_time_total_ms",
)
TIMINGS = (
    "schedule_strategy_execution_time_ms",
    "rebalance_execution_time_total_ms",
    "rebalance_strategy_execution_time_ms",
    "stop_instance_process_time_ms",
    "start_instance_process_time_ms",
    "drain_execution_time_total_ms",
)


def scrape(url: str) -> dict[str, tuple[dict[str, str], float]]:
    text = rest(url, "GET", "/metrics").decode()
    return {
        s.name: (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(PREFIX)
    }


def test_worker_metrics_time_scheduling_rebalance_drain_and_instance_start_stop(
    broker: EmbeddedBroker, tmp_path: str
) -> None:
    cluster: Cluster = new_cluster(broker, str(tmp_path), 2)
    try:
        leader = cluster.leader()
        assert leader is not None
        lead = next(w for w in cluster.workers if w.worker_id == leader["workerId"])
        other = next(w for w in cluster.workers if w is not lead)
        before = scrape(lead.url)
        assert set(before) == {PREFIX + n for n in EXISTING + TIMINGS}, sorted(before)
        assert all(labels["cluster"] == "standalone" for labels, _ in before.values())
        assert before[PREFIX + "drain_execution_time_total_ms"][1] == 0.0, "no drain has run yet"

        name = f"wm{uuid.uuid4().hex[:6]}"
        create(cluster, name, f"{name}-in", f"{name}-out", 2)
        assert wait_until(lambda: all_running(cluster, name, 2), timeout=40)
        rest(lead.url, "POST", f"/admin/v3/functions/public/default/{name}/restart")
        rest(lead.url, "PUT", "/admin/v2/worker/rebalance")
        rest(lead.url, "PUT", f"/admin/v2/worker/leader/drain?workerId={other.worker_id}")

        after = scrape(lead.url)
        for timing in TIMINGS:
            labels, value = after[PREFIX + timing]
            assert value > 0, f"{timing} was not measured"
            assert labels == {"cluster": "standalone", "workerId": lead.worker_id}  # --cluster-name default
        assert after[PREFIX + "total_function_count"][1] == 1
        assert after[PREFIX + "is_leader"][1] == 1
        assert scrape(other.url)[PREFIX + "is_leader"][1] == 0
        stats = rest(lead.url, "GET", "/admin/v2/worker-stats/metrics")
        apache = {name for name in stats[0]["metrics"] if name.startswith(PREFIX)}
        assert apache == {PREFIX + n for n in EXISTING + TIMINGS}
    finally:
        cluster.stop_all()
