"""The twin selector and its environment guards (checked in fresh interpreters)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.hotpath import PUBLIC, load


def run(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAGNETAR_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)


def test_both_twins_define_every_public_name() -> None:
    for twin in ("native", "pure"):
        hot = load(twin)
        for module, names in PUBLIC.items():
            for name in names:
                assert hasattr(getattr(hot, module), name), (twin, module, name)
    assert load("native").dispatch.Dispatcher is not load("pure").dispatch.Dispatcher


def test_no_extensions_selects_pure() -> None:
    out = run({"MAGNETAR_NO_EXTENSIONS": "1"}, "from engine.hotpath import load; print(load().name)")
    assert out.stdout.strip() == "pure", out.stderr


def test_default_is_native_when_built() -> None:
    out = run({}, "from engine.hotpath import load; print(load().name)")
    assert out.stdout.strip() == "native", out.stderr


def test_require_native_fails_loudly_when_missing() -> None:
    code = (
        "import sys; sys.modules['engine.hotpath.native.dispatch'] = None\n"
        "from engine.hotpath import load\nload()"
    )
    out = run({"MAGNETAR_REQUIRE_NATIVE": "1"}, code)
    assert out.returncode != 0
    assert "compiled hot path is not built" in out.stderr and "pip install -e ." in out.stderr


def test_contradictory_switches_are_rejected() -> None:
    out = run(
        {"MAGNETAR_REQUIRE_NATIVE": "1", "MAGNETAR_NO_EXTENSIONS": "1"},
        "from engine.hotpath import load; load()",
    )
    assert out.returncode != 0 and "contradict" in out.stderr


def test_unknown_twin() -> None:
    with pytest.raises(ValueError, match="unknown hot-path twin"):
        load("fast")


def _protocol_members(proto: type) -> set[str]:
    """Public attributes and methods a protocol class declares (its own, not Protocol's)."""
    names = set(getattr(proto, "__annotations__", {}))
    names |= {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}
    if callable(vars(proto).get("__call__")):
        names.add("__call__")
    return names


def test_both_twins_have_every_protocol_member() -> None:
    """The .pyi stubs are what mypy trusts; this holds the built modules to them too."""
    from engine.hotpath import protocols
    from tests.fakes import FakeBuilder, FakeProducer

    for twin in ("native", "pure"):
        hot = load(twin)
        codec = hot.serde.Codec(hot.serde.KIND_BYTES)
        stats = hot.stats.InstanceStats()
        instances = {
            protocols.Codec: codec,
            protocols.InstanceStats: stats,
            protocols.StateBuffer: hot.counters.StateBuffer(),
            protocols.PendingAcks: hot.acks.PendingAcks(),
            protocols.DuplicateFilter: hot.acks.DuplicateFilter(),
            protocols.BatchOutcome: hot.dispatch.BatchOutcome(),
            protocols.Dispatcher: hot.dispatch.Dispatcher(
                print, False, None, {}, codec, None, None, stats, 0
            ),
            protocols.OutputSender: hot.batching.OutputSender(FakeProducer(), FakeBuilder),
        }
        for proto, obj in instances.items():
            members = _protocol_members(proto)
            assert members, proto
            missing = sorted(n for n in members if not hasattr(obj, n))
            assert not missing, (twin, proto.__name__, missing)
        modules = {
            protocols.SerdeModule: hot.serde,
            protocols.StatsModule: hot.stats,
            protocols.CountersModule: hot.counters,
            protocols.AcksModule: hot.acks,
            protocols.DispatchModule: hot.dispatch,
            protocols.BatchingModule: hot.batching,
        }
        for proto, module in modules.items():
            members = set(proto.__annotations__) | {n for n in vars(proto) if not n.startswith("_")}
            missing = sorted(n for n in members if not hasattr(module, n))
            assert not missing, (twin, proto.__name__, missing)
