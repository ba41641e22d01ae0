"""Codecs of both twins, against Apache's own SerDe classes where they exist."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulsar.functions.serde import IdentitySerDe

from engine.hotpath import HotPath

APACHE_IDENTITY = IdentitySerDe()


def same(a: object, b: object) -> bool:
    """Equality that treats NaN (and complex NaN) as equal to itself, and checks types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    if isinstance(a, complex):
        return repr(a) == repr(b)
    return a == b


payloads = st.one_of(
    st.binary(max_size=40),
    st.text(alphabet="0123456789+-._()eEjJiInNfFaAtTyY \t\n\x0b\x0c\r\x1c\x1f", max_size=12).map(str.encode),
    st.text(max_size=30).map(lambda s: s.encode("utf-8")),
    st.sampled_from(
        [
            b"123",
            b"-7",
            b" 42 ",
            b"1_000",
            b"1.5e3",
            b"inf",
            b"-Infinity",
            b"NaN",
            b"nan",
            b"j",
            b"2j",
            b"(1+2j)",
            b"hello",
            b"",
            b"\xff\xfe",
            "\u0663".encode(),
            b"0x10",
            b"1e",
            b"infinite",
            b"JOIN",
        ]
    ),
)


@given(payloads)
@settings(max_examples=1500, deadline=None)
def test_identity_decode_matches_apache(data: bytes) -> None:
    from engine.hotpath import load

    expected = APACHE_IDENTITY.deserialize(data)
    for twin in ("native", "pure"):
        got = load(twin).serde.identity_decode(data)
        assert same(got, expected), (twin, data, got, expected)


@pytest.mark.parametrize("value", [0, -3, 2.5, 1j, "text", b"raw", "ünï"])
def test_identity_encode_matches_apache(hot: HotPath, value: object) -> None:
    assert hot.serde.identity_encode(value) == APACHE_IDENTITY.serialize(value)


@pytest.mark.parametrize("value", [None, [1], {"a": 1}, True, bytearray(b"x")])
def test_identity_encode_rejects_what_apache_rejects(hot: HotPath, value: object) -> None:
    with pytest.raises(TypeError, match="IdentitySerDe cannot serialize"):
        hot.serde.identity_encode(value)
    with pytest.raises(TypeError):
        APACHE_IDENTITY.serialize(value)


def test_codec_kinds_round_trip(hot: HotPath) -> None:
    s = hot.serde
    assert s.Codec(s.KIND_BYTES).decode(b"\x00\x01") == b"\x00\x01"
    assert s.Codec(s.KIND_BYTES).encode(bytearray(b"ab")) == b"ab"
    assert s.Codec(s.KIND_STRING).decode("ä".encode()) == "ä"
    assert s.Codec(s.KIND_STRING).encode("ä") == "ä".encode()
    assert s.Codec(s.KIND_JSON).decode(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert s.Codec(s.KIND_JSON).encode({"a": 1}) == b'{"a":1}'
    assert s.Codec(s.KIND_PICKLE).decode(pickle.dumps({"x": (1, 2)})) == {"x": (1, 2)}
    assert pickle.loads(s.Codec(s.KIND_PICKLE).encode([1, "a"])) == [1, "a"]


def test_codec_errors_name_the_problem(hot: HotPath) -> None:
    s = hot.serde
    with pytest.raises(UnicodeDecodeError):
        s.Codec(s.KIND_STRING).decode(b"\xff")
    with pytest.raises(ValueError):
        s.Codec(s.KIND_JSON).decode(b"{not json")
    with pytest.raises(TypeError, match="string SerDe cannot serialize object of type int"):
        s.Codec(s.KIND_STRING).encode(5)
    with pytest.raises(ValueError, match="unknown codec kind"):
        s.Codec(99)
    with pytest.raises(ValueError, match="needs a SerDe object"):
        s.Codec(s.KIND_USER)


def test_user_codec_calls_the_serde(hot: HotPath) -> None:
    class Upper:
        def serialize(self, value: str) -> bytes:
            return value.upper().encode()

        def deserialize(self, data: bytes) -> str:
            return data.decode()[::-1]

    codec = hot.serde.Codec(hot.serde.KIND_USER, Upper())
    assert codec.decode(b"abc") == "cba"
    assert codec.encode("abc") == b"ABC"
