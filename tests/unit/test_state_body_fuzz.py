"""Hypothesis: any JSON value as a state body gives a counter, a value, or a 400, nothing else."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api.state_routes import parse_state_body

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
)
_bodies = _values | st.dictionaries(
    st.sampled_from(["key", "numberValue", "stringValue", "byteValue", "version"]), _values, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(_bodies)
def test_state_body(body: Any) -> None:
    try:
        value = parse_state_body(body, "k")
    except web.HTTPException as exc:
        assert exc.status == 400 and exc.content_type == "application/json"
        return
    if isinstance(value, int):
        assert -(2**63) <= value < 2**63 and body["numberValue"] == value
    else:
        assert isinstance(value, bytes)
