"""The worker's side of its fork server: :class:`ForkServer` and the :class:`ForkedProcess` handles.

:class:`ForkServer` starts ``python -m engine.runtime.forkserver.server`` with one end
of a socket pair, waits for its greeting, and sends it launch requests. A reader
thread takes the server's answers: the pid of each child it forked, and each
child's exit code once the server reaped it.

:class:`ForkedProcess` offers what the process runtime uses of
:class:`subprocess.Popen` (``pid``, ``stdout``, ``poll``, ``wait``, ``send_signal``,
``terminate``, ``kill``, ``returncode``). Signals go straight to the child.

States of the server, in order: ``new`` → ``starting`` → ``ready`` → ``dead``
(it exited, or :meth:`ForkServer.close` was called). A dead server launches nothing
(:class:`ForkServerError`), so the runtime falls back to spawning children. Its
children stop on their own once their parent is gone; their handles then end with
:data:`LOST_WITH_SERVER` as their code and :attr:`ForkedProcess.lost` set.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Any

import engine

__all__ = ["LOST_WITH_SERVER", "ForkServer", "ForkServerError", "ForkedProcess", "fork_server_enabled"]

log = logging.getLogger(__name__)

#: The exit code of a child whose fork server died before it (its real code is not known).
LOST_WITH_SERVER = -int(signal.SIGKILL)

#: ``MAGNETAR_FORK_SERVER=0`` makes the process runtime spawn every child afresh.
ENV_SWITCH = "MAGNETAR_FORK_SERVER"

_MAX_PACKET = 1 << 20


def fork_server_enabled() -> bool:
    """Whether process-runtime children are forked from a fork server (the default)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class ForkServerError(RuntimeError):
    """The fork server cannot launch a child (it is gone, or refused); spawn instead."""


class ForkedProcess:
    """A child forked by the fork server, handled like a :class:`subprocess.Popen`."""

    def __init__(self, pid: int, stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        #: True when the fork server died first, so the child's own exit code is unknown.
        self.lost = False
        self._ended = threading.Event()

    def _exited(self, code: int, lost: bool = False) -> None:
        if self.returncode is None:
            self.lost = lost
            self.returncode = code
            self._ended.set()

    def poll(self) -> int | None:
        """The exit code once the child ended, else ``None``."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the child ends; raises :class:`subprocess.TimeoutExpired`."""
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"forked child {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child unless it already ended."""
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                log.debug("forked child %s is already gone", self.pid)

    def terminate(self) -> None:
        """SIGTERM: the child stops its instance in order."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (ended, or a zombie no one reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in (b"Z", b"X")


class ForkServer:
    """This worker's fork server; ``log_path`` receives what the server itself writes."""

    HELLO_TIMEOUT = 30.0
    LAUNCH_TIMEOUT = 10.0

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.state = "new"
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._hello = threading.Event()
        #: Set once the server has also made its idle-time imports (the connectors').
        self.preloaded = threading.Event()
        self._next_id = 0
        self._pending: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._children: dict[int, ForkedProcess] = {}
        # Exit codes that came before their launcher took its child's handle.
        self._early_exits: dict[int, int] = {}
        self._death = ""

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ForkServer:
        """Start the server process (it greets once its imports are done)."""
        with self._lock:
            if self.state != "new":
                return self
            self.state = "starting"
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(engine.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        # No gRPC object exists in the server when it forks: gRPC's fork handlers are not needed.
        env["GRPC_ENABLE_FORK_SUPPORT"] = "0"
        os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), mode=0o700, exist_ok=True)
        try:
            with open(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as errors:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "engine.runtime.forkserver.server", str(theirs.fileno())],
                    stdin=subprocess.DEVNULL,
                    stdout=errors,
                    stderr=errors,
                    env=env,
                    pass_fds=(theirs.fileno(),),
                )
        except OSError as exc:
            mine.close()
            self._died(f"could not start: {exc}")
            return self
        finally:
            theirs.close()
        self._sock = mine
        self.pid = self._proc.pid
        threading.Thread(target=self._read, name=f"fork-server-{self.pid}", daemon=True).start()
        return self

    @property
    def usable(self) -> bool:
        """False once the server died or was closed."""
        return self.state in ("new", "starting", "ready")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the server (its running children stop once they see it gone)."""
        sock, self._sock = self._sock, None
        self._died("closed")
        if sock is not None:
            # shutdown, not just close: the reader thread's recv holds the socket open.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:
                log.debug("fork server %s: %s", self.pid, exc)
            sock.close()
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("fork server %s did not exit in %.0fs; killing it", self.pid, timeout)
                self._proc.kill()
                self._proc.wait()

    def _died(self, why: str) -> None:
        with self._lock:
            if self.state == "dead":
                return
            self.state = "dead"
            self._death = why
            pending, self._pending = self._pending, {}
            children = list(self._children.values())
        self._hello.set()
        for event, answer in pending.values():
            answer.append({"op": "error", "error": f"fork server {why}"})
            event.set()
        if children:
            threading.Thread(target=self._watch_orphans, args=(children,), daemon=True).start()

    @staticmethod
    def _watch_orphans(children: list[ForkedProcess]) -> None:
        """The server is gone: each child ends on its own; notice when."""
        while children:
            for child in list(children):
                if child.returncode is not None or _gone(child.pid):
                    child._exited(LOST_WITH_SERVER, lost=True)
                    children.remove(child)
            time.sleep(0.05)

    # -- messages ------------------------------------------------------------------------------
    def _read(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(_MAX_PACKET)
            except OSError as exc:
                data = b""
                log.debug("fork server %s: %s", self.pid, exc)
            if not data:
                break
            self._dispatch(json.loads(data))
        if self.state != "dead":
            code = self._proc.wait() if self._proc is not None else None
            log.warning("fork server %s exited (code %s); new children are spawned", self.pid, code)
            self._died(f"exited with code {code}")

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "hello":
            threads = int(message.get("threads", 1))
            if threads > 1:
                log.warning("fork server %s has %s threads: not forking from it", self.pid, threads)
                self._died("has threads")
                return
            with self._lock:
                if self.state == "starting":
                    self.state = "ready"
            self._hello.set()
        elif op == "preloaded":
            self.preloaded.set()
        elif op == "exit":
            with self._lock:
                child = self._children.pop(int(message["pid"]), None)
                if child is None:
                    self._early_exits[int(message["pid"])] = int(message["code"])
            if child is not None:
                child._exited(int(message["code"]))
        elif op in ("started", "error"):
            with self._lock:
                waiting = self._pending.pop(int(message.get("id") or -1), None)
            if waiting is not None:
                waiting[1].append(message)
                waiting[0].set()

    # -- launching -----------------------------------------------------------------------------
    def launch(self, argv: list[str], env: dict[str, str], stderr_fd: int) -> ForkedProcess:
        """Fork a child running ``argv`` (``python -m engine.runtime.child ...``) with ``env``.

        Its stdout is a new pipe (the handle's ``stdout``), its stderr ``stderr_fd``.
        Raises :class:`ForkServerError` when the server cannot do it.
        """
        if self.state == "new":
            self.start()
        if not self._hello.wait(self.HELLO_TIMEOUT) or self.state != "ready":
            raise ForkServerError(f"fork server is not available ({self._death or 'no greeting'})")
        read_end, write_end = os.pipe()
        event = threading.Event()
        answer: list[Any] = []
        try:
            with self._lock:
                self._next_id += 1
                request_id = self._next_id
                self._pending[request_id] = (event, answer)
            packet = json.dumps({"op": "launch", "id": request_id, "argv": argv, "env": env}).encode()
            sock = self._sock
            if sock is None:
                raise ForkServerError("fork server is closed")
            with self._send_lock:
                socket.send_fds(sock, [packet], [write_end, stderr_fd])
        except OSError as exc:
            os.close(read_end)
            raise ForkServerError(f"fork server: {exc}") from exc
        finally:
            os.close(write_end)
        if not event.wait(self.LAUNCH_TIMEOUT) or not answer or answer[0].get("op") != "started":
            os.close(read_end)
            with self._lock:
                self._pending.pop(request_id, None)
            error = answer[0].get("error") if answer else f"no answer within {self.LAUNCH_TIMEOUT}s"
            raise ForkServerError(f"fork server could not launch the child: {error}")
        child = ForkedProcess(int(answer[0]["pid"]), os.fdopen(read_end, "rb"))
        with self._lock:
            early = self._early_exits.pop(child.pid, None)
            if early is not None:
                child._exited(early)
            elif self.state == "dead":
                # The server died after it answered: the child ends with it.
                threading.Thread(target=self._watch_orphans, args=([child],), daemon=True).start()
            else:
                self._children[child.pid] = child
        return child
