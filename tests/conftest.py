"""Shared fixtures: both hot-path twins, a real pulsar-lite broker, and a client."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pulsar
import pytest

from engine.broker import EmbeddedBroker, make_client
from engine.broker.client import BrokerOptions
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
    c = make_client(BrokerOptions(url=broker.url))
    yield c
    c.close()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic name prefix, so tests never share topics."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def data_dir(tmp_path: os.PathLike[str]) -> str:
    return str(tmp_path)
