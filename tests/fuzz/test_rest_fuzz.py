"""Schemathesis against a live worker: no 5xx, and answers that conform to the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from engine.api.openapi import OPENAPI
from engine.broker import EmbeddedBroker
from tests.cluster.conftest import Cluster, new_cluster
from tests.security.conftest import create_function

schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def live(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = new_cluster(broker, str(tmp_path_factory.mktemp("fuzz")), 1)
    # One real function, so generated requests that name it reach past the 404.
    assert create_function(c.workers[0].port, "fuzzed").status == 200
    yield c
    c.stop_all()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_rest_api_conforms(case: schemathesis.Case, live: Cluster) -> None:
    # A schema-valid body can still break a rule the document cannot state (a config
    # naming no class, a state body with two values): a clear 4xx is the right answer.
    case.call_and_validate(
        base_url=live.workers[0].url, timeout=30, excluded_checks=[positive_data_acceptance]
    )
