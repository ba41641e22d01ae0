"""Checks made before a worker, ``standalone`` or ``localrun`` starts, each failing in one line.

A failure to start is a :class:`StartupError` whose message names the cause (the flag
and value, the path, the port, the broker's address and what the connection attempt
said); ``magnetar`` prints it as one line and exits with code 2 (``--debug`` shows the
traceback). The checks are cheap and run before anything is started:

* :func:`check_broker_url` and :func:`check_state_url`: a URL scheme the component speaks;
* :func:`claim_data_dir`: the data dir exists or can be made, is writable, and is not
  used by another Magnetar process (an exclusive ``flock`` on ``<data dir>/magnetar.lock``,
  held for the life of the process: the embedded broker's own lock would otherwise fail
  later, with the real cause only in its log);
* :func:`check_port_free`: the REST port can be bound;
* :func:`check_broker_reachable`: a TCP connection to the broker opens within a timeout
  (``--broker-connect-timeout``), instead of the client retrying for 30 s.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import traceback
from typing import TextIO
from urllib.parse import urlsplit

__all__ = [
    "BROKER_SCHEMES",
    "DATA_DIR_LOCK",
    "DEFAULT_BROKER_CONNECT_TIMEOUT",
    "STATE_SCHEMES",
    "StartupError",
    "check_broker_reachable",
    "check_broker_url",
    "check_port_free",
    "check_state_url",
    "claim_data_dir",
    "describe_start_failure",
    "print_start_failure",
]

BROKER_SCHEMES = ("pulsar", "pulsar+ssl")
STATE_SCHEMES = ("sqlite", "postgresql", "postgres")
DATA_DIR_LOCK = "magnetar.lock"
DEFAULT_BROKER_CONNECT_TIMEOUT = 5.0

# Held open for the life of the process: closing a descriptor drops its flock.
_held_locks: dict[str, int] = {}


class StartupError(Exception):
    """Magnetar cannot start; the message is the one line shown to the user."""


def _broker_hosts(url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of every broker named by ``url`` (Pulsar allows ``pulsar://a:6650,b:6650``)."""
    scheme, _, rest = url.partition("://")
    default = 6651 if scheme == "pulsar+ssl" else 6650
    hosts = []
    for item in rest.split("/", 1)[0].split(","):
        parts = urlsplit(f"{scheme}://{item}")
        try:
            port = parts.port or default
        except ValueError:
            port = -1
        if parts.hostname:
            hosts.append((parts.hostname, port))
    return hosts


def check_broker_url(url: str) -> None:
    """``url`` is ``pulsar://host:port`` or ``pulsar+ssl://host:port`` (several hosts allowed)."""
    scheme = url.partition("://")[0] if "://" in url else ""
    hosts = _broker_hosts(url) if scheme in BROKER_SCHEMES else []
    if not hosts or any(port <= 0 for _, port in hosts):
        foreign = scheme not in ("", *BROKER_SCHEMES)
        raise StartupError(
            f"--broker-url {url!r}: expected pulsar://host:port or pulsar+ssl://host:port"
            + (f" (the scheme {scheme}:// is not a Pulsar broker's)" if foreign else "")
        )


def check_state_url(url: str) -> None:
    """``url`` is ``sqlite:///path``, ``postgresql://…`` or a bare path."""
    if "://" not in url:
        return
    scheme = url.split("://", 1)[0]
    if scheme not in STATE_SCHEMES or (scheme == "sqlite" and not url.startswith("sqlite:///")):
        raise StartupError(
            f"--state-storage-url {url!r}: expected sqlite:///path or postgresql://user@host/database"
            f" (the scheme {scheme}:// is not supported)"
        )


def claim_data_dir(path: str) -> None:
    """Make ``path`` (0700) if needed, check that it is writable, and lock it for this process."""
    path = os.path.abspath(path)
    if path in _held_locks:
        return
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(path, DATA_DIR_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StartupError(f"data dir {path} is not usable: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise StartupError(f"data dir {path} is in use by another magnetar process{who}") from exc
        raise StartupError(f"data dir {path} cannot be locked: {exc.strerror or exc}") from exc
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError as exc:  # a read-only file system lets the open and lock pass
        os.close(fd)
        raise StartupError(f"data dir {path} is not writable: {exc.strerror or exc}") from exc
    _held_locks[path] = fd


def check_port_free(host: str, port: int) -> None:
    """The REST API can listen on ``host:port``."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is in use (choose another with --port)") from exc
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def check_broker_reachable(url: str, timeout: float) -> None:
    """A TCP connection to (one of) the brokers of ``url`` opens within ``timeout`` seconds."""
    causes = []
    for host, port in _broker_hosts(url):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except TimeoutError:
            causes.append(f"no answer within {timeout:g} s (--broker-connect-timeout)")
        except OSError as exc:
            causes.append(str(exc.strerror or exc))
    raise StartupError(f"cannot reach the broker at {url}: {'; '.join(causes) or 'no host in the URL'}")


def describe_start_failure(exc: BaseException, broker_url: str | None = None) -> str:
    """One line naming why a start failed, from the exception it raised."""
    if isinstance(exc, StartupError):
        return str(exc)
    if isinstance(exc, OSError):
        if exc.errno == errno.EADDRINUSE:
            return f"an address is in use: {exc.strerror or exc}"
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot start: {exc.strerror or exc}{':' if where else ''}{where}"
    module = type(exc).__module__ or ""
    if module.startswith(("pulsar", "_pulsar")):
        where = f" at {broker_url}" if broker_url else ""
        return f"the broker{where} failed the start: {type(exc).__name__}: {exc}"
    text = str(exc).strip().splitlines()
    return f"cannot start: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def print_start_failure(exc: BaseException, debug: bool, stream: TextIO) -> None:
    """Print the one line (and, with ``debug``, the traceback before it) to ``stream``."""
    if debug:
        traceback.print_exception(exc, file=stream)
    print(f"magnetar: {describe_start_failure(exc)}", file=stream)
