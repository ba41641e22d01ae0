"""A custom Python source and sink written against the API, packaged as .zip, run by ``localrun``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from engine.broker import EmbeddedBroker
from tests.io.conftest import topic, wait_until
from tests.packaging_helpers import make_zip

SOURCE = '''
from engine.io import Record, Source


class Counter(Source):
    """Emits ``count`` records; remembers, in its ack file, which ones the broker persisted."""

    def open(self, config, context):
        self.count = int(context.get_user_config_value("count"))
        self.ack_file = config["ackFile"]
        self.n = 0
        context.get_logger().info("counter source open")

    def read(self):
        if self.n >= self.count:
            return None
        first, self.n = self.n, min(self.count, self.n + 7)
        return [
            Record({"n": i}, key=f"k{i % 3}", properties={"src": "counter"}, event_time=1000 + i,
                   ack=self._acker(i))
            for i in range(first, self.n)
        ]

    def _acker(self, i):
        def ack():
            with open(self.ack_file, "a") as fh:
                fh.write(f"{i}\\n")
        return ack
'''

SINK = '''
import json

from engine.io import Sink


class Lines(Sink):
    """Writes ``key:n`` per record; fails a record whose n is ``failOnce`` the first time."""

    def open(self, config, context):
        self.path = context.get_user_config_value("outFile")
        self.fail_once = config.get("failOnce")
        self.failed = False

    def write(self, records):
        with open(self.path, "a") as fh:
            for r in records:
                n = r.value["n"]
                if n == self.fail_once and not self.failed:
                    self.failed = True
                    r.fail("failing once on purpose")
                    continue
                fh.write(f"{r.key}:{n}:{r.properties['src']}:{r.event_time}\\n")
                r.ack()
'''


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


def test_custom_zip_source_and_sink_through_localrun(broker: EmbeddedBroker, tmp_path: Path) -> None:
    src_zip = make_zip(str(tmp_path / "counter.zip"), {"counter_source/__init__.py": SOURCE})
    sink_zip = make_zip(str(tmp_path / "lines.zip"), {"lines_sink/__init__.py": SINK})
    mid = topic()
    acks, out = tmp_path / "acks.txt", tmp_path / "out.txt"
    common = ["--broker-url", broker.url, "--broker-kind", "pulsar-lite"]
    sink = _start(
        "sinks",
        "localrun",
        "--archive",
        sink_zip,
        "--classname",
        "lines_sink.Lines",
        "--name",
        "lines",
        "--inputs",
        mid,
        "--subs-position",
        "Earliest",
        "--schema-type",
        "JSON",
        "--negative-ack-redelivery-delay-ms",
        "100",
        "--data-dir",
        str(tmp_path / "sink-data"),
        "--sink-config",
        orjson.dumps({"outFile": str(out), "failOnce": 5}).decode(),
        *common,
    )
    source = _start(
        "sources",
        "localrun",
        "--archive",
        src_zip,
        "--classname",
        "counter_source.Counter",
        "--name",
        "counter",
        "--destination-topic-name",
        mid,
        "--schema-type",
        "JSON",
        "--data-dir",
        str(tmp_path / "source-data"),
        "--source-config",
        orjson.dumps({"count": 40, "ackFile": str(acks)}).decode(),
        *common,
    )
    try:

        def lines() -> list[str]:
            return out.read_text().splitlines() if out.exists() else []

        def distinct() -> set[int]:
            return {int(line.split(":")[1]) for line in lines()}

        assert wait_until(lambda: len(distinct()) == 40, timeout=60), (lines(), source.poll(), sink.poll())
        got = lines()
        # At-least-once: none missing; the failed record's batch entry may come again whole.
        assert sorted(distinct()) == list(range(40))
        assert f"k{7 % 3}:7:counter:1007" in got
        assert sorted(int(x) for x in acks.read_text().split()) == list(range(40))
    finally:
        source_err = _stop(source)
        sink_err = _stop(sink)
    assert "running source public/default/counter" in source_err, source_err
    assert "running sink public/default/lines" in sink_err, sink_err
    assert os.path.getsize(out) > 0


def test_localrun_rejects_a_class_that_is_not_a_sink(broker: EmbeddedBroker, tmp_path: Path) -> None:
    bad = make_zip(str(tmp_path / "bad.zip"), {"notasink.py": "class Thing:\n    pass\n"})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "sinks",
            "localrun",
            "--archive",
            bad,
            "--classname",
            "notasink.Thing",
            "--inputs",
            topic(),
            "--broker-url",
            broker.url,
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "notasink.Thing is not a sink class" in proc.stderr
