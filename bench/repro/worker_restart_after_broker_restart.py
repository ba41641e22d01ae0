"""Reproduction: a worker killed after the broker restarted cannot start again.

Two workers run one function on an embedded pulsar-lite broker; the broker is stopped and
started; then worker ``w2`` is SIGKILLed and started again with the same id and data dir.
Seen (2026-12-02, every run): the new ``w2`` exits with ``cannot start:
persistent://<ns>/metadata: reading to (0,0,-1,-1) stalled after 0 messages``, and so do
all later attempts while ``w1`` runs. A broker started fresh on the same data serves
the same topic from the beginning to any reader, so the stall needs the restarted broker
and the surviving worker. bench/chaos.py hits it whenever it kills a worker after a broker
stop (``failed_worker_restarts``).

Fixed since: the start-up read of the metadata after a snapshot taken at the last record
waited for a record that never came (``engine/cluster/topic_io.read_range``); it now returns
at once, and ``w2`` starts again.

Run: ``python bench/repro/worker_restart_after_broker_restart.py`` (prints what it saw; exits 0).
"""

import os
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from chaos import FUNCTIONS, Worker  # noqa: E402

from engine.broker import EmbeddedBroker, free_port  # noqa: E402


def main() -> None:
    root = tempfile.mkdtemp(prefix="magnetar-repro-")
    broker = EmbeddedBroker(os.path.join(root, "broker")).start()
    namespace = f"public/r{uuid.uuid4().hex[:6]}"

    def worker(wid: str) -> Worker:
        port = free_port()
        argv = [
            sys.executable, "-m", "engine", "worker", "--broker-url", broker.url,
            "--broker-kind", "pulsar-lite", "--worker-id", wid, "--port", str(port),
            "--data-dir", os.path.join(root, wid), "--functions-namespace", namespace,
            "--heartbeat-interval", "0.3", "--election-timeout", "3",
        ]  # fmt: skip
        return Worker(wid, port, argv, os.path.join(root, f"{wid}.log"))

    w1, w2 = worker("w1"), worker("w2")
    try:
        print("w1 started:", w1.start(), "w2 started:", w2.start())
        time.sleep(5)  # a leader is elected
        create = [
            sys.executable, "-m", "engine", "functions", "create", "--admin-url", w1.url, "--name", "e",
            "--py", FUNCTIONS, "--classname", "chaos_functions.Echo", "--inputs", "e-in", "--output", "e-out",
        ]  # fmt: skip
        done = subprocess.run(create, capture_output=True, text=True)
        print("create:", done.returncode, done.stderr.strip()[-200:])
        time.sleep(3)
        broker.stop()
        time.sleep(2)  # the broker is away
        broker.start()
        time.sleep(5)  # the workers reconnect
        w2.kill()
        print("w2 started again:", w2.start())
        with open(w2.log_path) as fh:
            print("".join(line for line in fh if "cannot start" in line)[-300:])
    finally:
        w1.stop()
        w2.stop()
        broker.stop()


if __name__ == "__main__":
    main()
