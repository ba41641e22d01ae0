"""Crash attribution: which input was being processed when the instance's process died.

Before each batch the instance writes the range of input positions it is about to run
to a small file of its own (one ``pwrite``, no fsync: it must survive the process, not
the machine). When the process dies (``os._exit``, a signal, a C extension's SIGSEGV,
the kernel's OOM kill), the next start of the instance finds that range: those inputs
are *suspects*. A batch holding suspects is then run one input at a time, each one's
position written before the user's code runs, so a second death names the input
exactly and counts one failed attempt for it. Suspect ranges are kept until a clean
stop: their inputs may come back in any grouping, and new inputs lie past them. Once its attempts pass
``maxMessageRetries`` the input is dead-lettered with ``__pfn_error__`` naming the crash
instead of being run again; without retries configured it is retried on every restart
(the runtime restarts with backoff) and status names the crash.

The worker that notices a child's death adds how it ended (:func:`record_exit`), also when
the child died before it was ready. A call
that runs past ``timeoutMs`` in a process of its own ends the process the same way, with
the input recorded first, so the timeout counts as a failed attempt of that input.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson

__all__ = [
    "EXIT_CALL_TIMED_OUT",
    "TIMED_OUT_EXIT",
    "CrashLedger",
    "ledger_path",
    "read_positions",
    "record_exit",
]

#: Exit code of an instance process that ended itself because a call ran past ``timeoutMs``.
EXIT_CALL_TIMED_OUT = 4
#: How such a process ended, as recorded in the ledger (``str.format`` with ``timeout_ms``).
TIMED_OUT_EXIT = "was replaced because process() ran over timeoutMs={timeout_ms}"

log = logging.getLogger(__name__)

Key = tuple[str, int, int, int]
Pos = tuple[int, int, int]


def _key(msg: Any) -> Key:
    mid = msg.message_id()
    return msg.topic_name(), mid.ledger_id(), mid.entry_id(), mid.batch_index()


def _pos(mid: Any) -> list[int]:
    return [mid.ledger_id(), mid.entry_id(), mid.batch_index()]


def ledger_path(run_dir: str, tenant: str, namespace: str, name: str, instance_id: int) -> str:
    """Where instance ``instance_id`` of a function keeps its crash ledger."""
    return os.path.join(run_dir, f"{tenant}.{namespace}.{name}-{instance_id}.inflight")


def record_exit(path: str, how: str) -> None:
    """Note in the ledger at ``path`` how the instance's process ended (e.g. ``exited with code 1``)."""
    try:
        with open(path, "rb") as fh:
            data = orjson.loads(fh.read() or b"{}")
    except FileNotFoundError:
        return  # it died outside any batch
    except orjson.JSONDecodeError as exc:
        log.warning("crash ledger %s is unreadable (%s); starting it anew", path, exc)
        data = {}
    data["exit"] = how
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(data))


class CrashLedger:
    """The in-flight record of one instance, and what the last death left in it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        #: Position ranges per topic of the batch that was running when the process died.
        self._suspect_ranges: dict[str, list[tuple[Pos, Pos]]] = {}
        #: What was in flight at the last death alone (read back once on brokers that lose it).
        self._last_in_flight: dict[str, list[tuple[Pos, Pos]]] = {}
        self._batch: dict[str, list[Any]] = {}
        #: Inputs known to have been running when the process died, with how many times.
        self.crashes: dict[Key, int] = {}
        #: How the last death ended, as the worker recorded it.
        self.last_exit = ""
        #: True when every input comes from one topic that has no partitions (the instance
        #: sets it once subscribed): a batch's range then needs only its message ids.
        self.one_topic = False

    # -- start-up ------------------------------------------------------------------------------------
    def open(self) -> None:
        """Read what the last run left (blocking) and open the file for this run."""
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raw = b""
        if raw:
            try:
                self._restore(orjson.loads(raw))
            except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
                log.warning("crash ledger %s is unreadable (%s); ignoring it", self.path, exc)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def _restore(self, data: dict[str, Any]) -> None:
        self.crashes = {(k[0], k[1], k[2], k[3]): int(n) for k, n in data.get("crashes", [])}
        self.last_exit = str(data.get("exit", ""))
        current = data.get("current")
        if current is not None:
            key: Key = (current[0], current[1], current[2], current[3])
            self.crashes[key] = self.crashes.get(key, 0) + 1
            log.warning("%s: the process died while processing input %s (%s)", self.path, key, self.last_exit)
        for topic, ranges in data.get("suspects", {}).items():
            for low, high in ranges:
                self._suspect_ranges.setdefault(topic, []).append(((*low,), (*high,)))
        for topic, (low, high) in data.get("batch", {}).items():
            self._suspect_ranges.setdefault(topic, []).append(((*low,), (*high,)))
            self._last_in_flight.setdefault(topic, []).append(((*low,), (*high,)))
        if current is not None:
            pos = (current[1], current[2], current[3])
            self._last_in_flight.setdefault(current[0], []).append((pos, pos))

    # -- the loop ------------------------------------------------------------------------------------
    @property
    def has_suspects(self) -> bool:
        """True while some input may have killed the process."""
        return bool(self._suspect_ranges or self.crashes)

    def is_suspect(self, msg: Any) -> bool:
        """True if ``msg`` was in flight when the process died."""
        key = _key(msg)
        if key in self.crashes:
            return True
        ranges = self._suspect_ranges.get(key[0])
        if not ranges:
            return False
        pos = (key[1], key[2], key[3])
        return any(low <= pos <= high for low, high in ranges)

    def last_in_flight(self) -> dict[str, list[tuple[Pos, Pos]]]:
        """Per topic, the position ranges that were in flight at the last death."""
        return {t: list(r) for t, r in self._last_in_flight.items()}

    def crash_count(self, msg: Any) -> int:
        """How many times the process died while running ``msg``."""
        return self.crashes.get(_key(msg), 0)

    def begin_batch(self, msgs: list[Any]) -> None:
        """Record the positions of the batch about to run (one write)."""
        if self.one_topic:
            # One topic: a batch comes in the broker's dispatch order, so its first and last
            # inputs bound it, and two ids cost what reading every input's would cost a
            # thousand times. An input redelivered among newer ones may fall outside: if it
            # kills the process, the death goes unattributed once, and on the restart it
            # comes back first (the oldest unacknowledged), inside the next range.
            first, last = msgs[0], msgs[-1]
            a, b = _pos(first.message_id()), _pos(last.message_id())
            self._batch = {first.topic_name(): [min(a, b), max(a, b)]}
            self._write({"batch": self._batch, **self._known()})
            return
        self._begin_exactly(msgs)

    def _begin_exactly(self, msgs: list[Any]) -> None:
        """Record the range of every input's position, per topic."""
        ranges: dict[str, list[Any]] = {}
        for msg in (msgs[0], msgs[-1]) if len(msgs) < 3 else msgs:
            mid = msg.message_id()
            pos = [mid.ledger_id(), mid.entry_id(), mid.batch_index()]
            entry = ranges.get(msg.topic_name())
            if entry is None:
                ranges[msg.topic_name()] = [pos, pos]
            else:
                entry[0] = min(entry[0], pos)
                entry[1] = max(entry[1], pos)
        self._batch = ranges
        self._write({"batch": ranges, **self._known()})

    def begin_isolation(self, msgs: list[Any]) -> None:
        """A batch is about to run one input at a time: it stays the batch in flight, every input in range."""
        self._begin_exactly(msgs)

    def begin_one(self, msg: Any) -> None:
        """Record that ``msg`` alone is about to run (within the batch in flight)."""
        self._write({"current": list(_key(msg)), "batch": self._batch, **self._known()})

    def _known(self) -> dict[str, Any]:
        # What earlier deaths taught stays until a clean stop: inputs of a suspect range may
        # come back in any grouping, and new inputs lie past every range anyway.
        suspects = {t: [[list(lo), list(hi)] for lo, hi in r] for t, r in self._suspect_ranges.items()}
        return {"suspects": suspects, "crashes": list(self.crashes.items())}

    def settled(self, msg: Any) -> None:
        """``msg`` ran without killing the process."""
        self.crashes.pop(_key(msg), None)

    def _write(self, data: dict[str, Any]) -> None:
        fd = self._fd
        if fd is None:
            return
        payload = orjson.dumps(data)
        os.pwrite(fd, payload, 0)
        os.ftruncate(fd, len(payload))

    def close(self) -> None:
        """A clean stop: nothing is in flight, so the ledger is removed."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self.crashes:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                log.debug("crash ledger %s was already gone", self.path)


#: How long a read-back may wait for the inputs of a crashed range before giving up on them.
READ_BACK_TIMEOUT_S = 30.0
#: How long one reader may stay silent before it is replaced by a fresh one.
READER_SILENCE_S = 3.0


def read_positions(
    client: Any, topic: str, low: Pos, high: Pos, stop: Any, timeout_s: float = READ_BACK_TIMEOUT_S
) -> list[Any]:
    """The messages of ``topic`` from position ``low`` to ``high``, read with a reader.

    ``high`` is the position of an input that was delivered, so it is on the topic: the
    read goes on until it has passed it. A reader handed nothing for
    :data:`READER_SILENCE_S` is replaced by a new one (pulsar-lite sometimes never
    dispatches to a reader opened just after a killed process's connection went away),
    and only ``timeout_s`` in all ends the read short, with a warning naming what was
    not read back. An entry handed over twice (pulsar-lite) is kept once.
    """
    deadline = time.monotonic() + timeout_s
    found: dict[Pos, Any] = {}
    readers = 0
    while not stop.is_set() and time.monotonic() < deadline:
        readers += 1
        if _read_range(
            client, topic, low, high, found, stop, min(deadline, time.monotonic() + READER_SILENCE_S)
        ):
            if readers > 1:
                log.warning("%s: read back inputs %s..%s with reader %d", topic, low, high, readers)
            return [found[pos] for pos in sorted(found)]
    if not stop.is_set():
        log.warning(
            "%s: gave up reading back inputs %s..%s after %.0f s and %d readers; read %d of them",
            topic,
            low,
            high,
            timeout_s,
            readers,
            len(found),
        )
    return [found[pos] for pos in sorted(found)]


def _read_range(
    client: Any, topic: str, low: Pos, high: Pos, found: dict[Pos, Any], stop: Any, quiet_until: float
) -> bool:
    """Add to ``found`` what one reader yields of ``low..high``; True once it has passed ``high``.

    Returns False when nothing came before ``quiet_until`` (each message read moves it on
    by :data:`READER_SILENCE_S`).
    """
    import pulsar

    from engine.broker.adapter import raw_reader

    ledger, entry, _batch = low
    start = pulsar.MessageId(-1, ledger, entry - 1, -1) if entry > 0 else pulsar.MessageId.earliest
    reader = client.create_reader(topic, start, receiver_queue_size=1000)
    try:
        raw = raw_reader(reader)
        while not stop.is_set():
            try:
                msg = raw.read_next(200)
            except pulsar.Timeout:
                if time.monotonic() < quiet_until:
                    continue
                return False
            quiet_until = time.monotonic() + READER_SILENCE_S
            mid = msg.message_id()
            pos = (mid.ledger_id(), mid.entry_id(), mid.batch_index())
            if low <= pos <= high:
                found.setdefault(pos, msg)
            if pos >= high:
                return True
    finally:
        reader.close()
    return False
