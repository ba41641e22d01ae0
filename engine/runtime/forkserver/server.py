"""The fork server process: ``python -m engine.runtime.forkserver.server FD``.

It imports the engine, the Pulsar client library, gRPC and the modules a child runs
once, while it has a single thread and no client or gRPC object exists, then forks
one child per launch request. A forked child starts with those modules loaded and
their pages shared with the server (copy-on-write), so it is running in a fraction
of the time a fresh interpreter takes and adds little memory to the machine.

FD is one end of a ``SOCK_SEQPACKET`` socket pair whose other end the worker holds;
each packet is one JSON message:

* to the worker, once imports are done: ``{"op": "hello", "pid": P, "threads": N}``;
* to the worker, once the idle-time imports are done too: ``{"op": "preloaded"}``;
* from the worker: ``{"op": "launch", "id": I, "argv": [...], "env": {...}}`` with
  two file descriptors attached (the child's stdout and stderr);
* to the worker: ``{"op": "started", "id": I, "pid": P}`` or
  ``{"op": "error", "id": I, "error": "..."}``;
* to the worker, when a child ends: ``{"op": "exit", "pid": P, "code": C}`` with
  :attr:`subprocess.Popen.returncode`'s convention (``-N`` for signal ``N``).

The server exits when the worker's end closes (the worker stopped or died); its
children notice that their parent is gone and stop in order, as spawned children do
when their worker disappears.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from typing import Any

__all__ = ["PRELOAD", "main", "run_child", "thread_count"]

#: Modules a child needs, imported once here so that children share them.
PRELOAD = (
    "grpc",
    "pulsar",
    "google.protobuf.empty_pb2",
    "engine.broker.client",
    "engine.hotpath",
    "engine.instance.options",
    "engine.instance.secrets",
    "engine.proto.Function_pb2",
    "engine.runtime.builder",
    "engine.runtime.child",
    "engine.runtime.control",
    "engine.runtime.metrics",
    "engine.state",
    "setproctitle",
)

#: What a source's or a sink's child imports (the connectors, aiohttp among them), imported
#: once the server has been idle for :data:`IDLE_PRELOAD_S` after its greeting: it takes
#: about 300 ms, which would delay the first child of a localrun, and a function's child
#: does not need it. A connector's child forked before that imports it itself.
IDLE_PRELOAD = ("engine.io.details",)
IDLE_PRELOAD_S = 1.0

#: The compiled hot path, when it is built (a child of the pure twin does not need it).
OPTIONAL_PRELOAD = "engine.hotpath.native"

#: The command a launch request runs; the child's own arguments follow it.
CHILD_COMMAND = ("-m", "engine.runtime.child")

_MAX_PACKET = 1 << 20


def thread_count() -> int:
    """How many threads this process has (forking is safe with one)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _send(sock: socket.socket, **message: Any) -> None:
    sock.send(json.dumps(message).encode())


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def run_child(argv: list[str], env: dict[str, str], out: int, err: int, close: list[int]) -> None:
    """In the forked child: take the given streams and run the instance; never returns."""
    code = 1
    try:
        # ps and /proc/PID/cmdline show the command a spawned child would have (set
        # before the environment changes: the title may take over its memory).
        import setproctitle

        setproctitle.setproctitle(" ".join(argv))
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in close:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in {null, out, err} - {0, 1, 2}:
            os.close(fd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(argv)
        from engine.runtime import child

        code = child.main(argv[1 + len(CHILD_COMMAND) :])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # the child's last word goes to its log, then it exits
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                code = code or 1
        os._exit(code)


class _Server:
    """The server's loop: launch requests in, children's births and deaths out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        # A handler (not SIG_DFL) so that SIGCHLD writes to the wake-up pipe.
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def serve(self) -> int:
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ)
        selector.register(self.wake_r, selectors.EVENT_READ)
        later = list(IDLE_PRELOAD)
        while True:
            ready = selector.select(IDLE_PRELOAD_S if later else None)
            if not ready and later:
                for name in later:
                    __import__(name)
                later = []
                gc.collect()
                gc.freeze()
                _send(self.sock, op="preloaded")
            for key, _ in ready:
                if key.fileobj is self.sock:
                    if not self._request():
                        return 0
                else:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
            self._reap()

    def _request(self) -> bool:
        """Handle one packet from the worker; false once the worker is gone."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_PACKET, 4)
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        try:
            message = json.loads(data)
            if message.get("op") != "launch" or len(fds) != 2:
                raise ValueError(f"unexpected request {message.get('op')!r} with {len(fds)} descriptors")
            pid = self._fork(message, fds)
        except Exception as exc:
            _send(
                self.sock,
                op="error",
                id=message.get("id") if isinstance(message, dict) else None,
                error=f"{type(exc).__name__}: {exc}",
            )
        else:
            _send(self.sock, op="started", id=message["id"], pid=pid)
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def _fork(self, message: dict[str, Any], fds: list[int]) -> int:
        argv = [str(a) for a in message["argv"]]
        if tuple(argv[1 : 1 + len(CHILD_COMMAND)]) != CHILD_COMMAND:
            raise ValueError(f"not a child's command: {argv[:3]}")
        env = {str(k): str(v) for k, v in message["env"].items()}
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(argv, env, fds[0], fds[1], [self.sock.fileno(), self.wake_r, self.wake_w])
        self.children.add(pid)
        return pid

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            _send(self.sock, op="exit", pid=pid, code=_exit_code(status))


def _preload_native() -> None:
    """Import the compiled hot-path modules if they are built (children then share them)."""
    from engine.hotpath.select import PUBLIC

    for module in PUBLIC:
        try:
            __import__(f"{OPTIONAL_PRELOAD}.{module}")
        except ImportError as exc:
            print(f"fork server: compiled hot path not preloaded ({exc})", file=sys.stderr, flush=True)
            return


def main(argv: list[str] | None = None) -> int:
    """Import what children need, greet the worker, then serve launch requests."""
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops us by closing its end
    for name in PRELOAD:
        __import__(name)
    _preload_native()
    # What the imports allocated is shared with every child: keep the collector from
    # touching (and so copying) those pages in each of them.
    gc.collect()
    gc.freeze()
    _send(sock, op="hello", pid=os.getpid(), threads=thread_count())
    return _Server(sock).serve()


if __name__ == "__main__":
    sys.exit(main())
