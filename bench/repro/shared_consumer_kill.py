"""Reproduction: pulsar-lite can lose messages delivered to a Shared consumer that is SIGKILLed.

No Magnetar code is involved beyond starting the broker: consumer A (a child process) records
each message *before* acknowledging it and is killed mid-stream; consumer B takes the rest.
With a correct broker the union of both is every message; with pulsar-lite 0.2.0 some runs
miss one or two batch entries (seen: 400 and 82 of 12,000 in 2 of 5 runs). Apache Pulsar
redelivers a disconnected consumer's unacknowledged messages.

Run: ``python bench/repro/shared_consumer_kill.py`` (prints the counts; exits 0 either way).
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pulsar

from engine.broker import EmbeddedBroker, make_client
from engine.broker.client import BrokerOptions

b = EmbeddedBroker(tempfile.mkdtemp(prefix="repro-")).start()
t = "persistent://public/functions/s" + uuid.uuid4().hex[:6]
child = subprocess.Popen(
    [
        sys.executable,
        "-c",
        f"""
import pulsar, time, sys
from engine.broker.client import make_client, BrokerOptions
c = make_client(BrokerOptions(url='{b.url}', consumer_id_spread=4096))
cons = c.subscribe('{t}', 'sub', consumer_type=pulsar.ConsumerType.Shared,
    batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(1000, -1, 2))
print('ready', flush=True)
while True:
    ms = cons._consumer.batch_receive()
    time.sleep(0.003)
    for m in ms:
        sys.stdout.write(m.data().decode() + "\\n")
    sys.stdout.flush()
    for m in ms:
        cons._consumer.acknowledge(m)
""",
    ],
    stdout=subprocess.PIPE,
    text=True,
    env={
        **os.environ,
        "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    },
)
print(child.stdout.readline().strip())
a_acked = []


def reada():
    for line in child.stdout:
        a_acked.append(line.strip())


threading.Thread(target=reada, daemon=True).start()
cb = make_client(BrokerOptions(url=b.url, consumer_id_spread=4096))
consb = cb.subscribe(
    t,
    "sub",
    consumer_type=pulsar.ConsumerType.Shared,
    batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(1000, -1, 2),
)
got = set()
stop = threading.Event()


def readb():
    while not stop.is_set():
        for m in consb._consumer.batch_receive():
            consb._consumer.acknowledge(m)
            got.add(m.data().decode())


threading.Thread(target=readb, daemon=True).start()
p = cb.create_producer(t, batching_enabled=True, batching_max_publish_delay_ms=5, block_if_queue_full=True)
N = 12000


def produce():
    start = time.monotonic()
    for i in range(N):
        p.send_async(f"m{i}".encode(), None)
        if i % 200 == 199:
            p.flush()
            d = start + (i + 1) / 2000 - time.monotonic()
            if d > 0:
                time.sleep(d)
    p.flush()


th = threading.Thread(target=produce)
th.start()
time.sleep(2)
os.kill(child.pid, signal.SIGKILL)
print("killed", flush=True)
th.join()
time.sleep(5)
stop.set()
total = got | set(a_acked)
print("A acked", len(a_acked), "B got", len(got), "union", len(total), "missing", N - len(total))
b.stop()
