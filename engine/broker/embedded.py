"""The embedded broker: a pulsar-lite process started and owned by Magnetar.

It listens on loopback only (broker port and metrics endpoint), keeps its data under
the given directory, is waited for until it accepts connections, and is stopped
with SIGTERM (SIGKILL after a grace period). On Linux the child also receives
SIGKILL if the Magnetar process dies, so no broker is ever orphaned.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

from engine.broker.client import BrokerOptions

__all__ = ["BrokerStartError", "EmbeddedBroker", "free_port"]


class BrokerStartError(RuntimeError):
    """The embedded broker could not be started; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgrp()  # keep terminal Ctrl-C for the parent, which stops us in order


def _find_binary() -> str:
    try:
        from pulsar_lite.binary_finder import find_pulsar_lite_binary
    except ImportError as exc:
        raise BrokerStartError(f"pulsar-lite is not installed ({exc}); pip install pulsar-lite")
    try:
        return str(find_pulsar_lite_binary())
    except FileNotFoundError as exc:
        raise BrokerStartError(f"the pulsar-lite binary was not found: {exc}")


class EmbeddedBroker:
    """A pulsar-lite broker on 127.0.0.1 with its data in ``data_dir``.

    Parameters
    ----------
    data_dir
        Directory for the broker's data, configuration and log file.
    port
        Broker port; a free one when ``None``.
    """

    def __init__(self, data_dir: str, port: int | None = None, log_level: str = "warn") -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.port = port
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``pulsar://`` service URL."""
        return f"pulsar://127.0.0.1:{self.port}"

    def options(self) -> BrokerOptions:
        """How to reach this broker: its URL, declared as pulsar-lite (its quirks are worked around)."""
        return BrokerOptions(url=self.url, kind="pulsar-lite")

    @property
    def log_path(self) -> str:
        """Where the broker's output goes."""
        return os.path.join(self.data_dir, "broker.log")

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        if self.process is not None:
            return self
        binary = _find_binary()
        os.makedirs(self.data_dir, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        metrics_port = free_port()
        config = os.path.join(self.data_dir, "pulsar-lite.toml")
        with open(config, "w") as fh:
            fh.write(f'[metrics]\nenabled = false\naddr = "127.0.0.1:{metrics_port}"\n')
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--addr",
                    f"127.0.0.1:{self.port}",
                    "--db-path",
                    os.path.join(self.data_dir, "broker"),
                    "--config",
                    config,
                    "--log-level",
                    self.log_level,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                preexec_fn=_die_with_parent if os.name == "posix" else None,
            )
        finally:
            log.close()
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerStartError(
                    f"pulsar-lite exited with code {self.process.returncode} before serving; "
                    f"see {self.log_path}: {self._log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerStartError(
            f"pulsar-lite did not accept connections on port {self.port} within {timeout:.0f}s"
        )

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                return fh.read()[-500:].decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``grace`` seconds."""
        proc = self.process
        if proc is None:
            return
        self.process = None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
