"""Choose between the compiled hot path and its pure-Python twin.

The one place that decides which twin runs. Each hot-path module exists twice with
the same public names: compiled from ``ext/<module>.pyx`` into
``engine.hotpath.native.<module>``, and as ``engine.hotpath.<module>``.

Environment
-----------
``MAGNETAR_NO_EXTENSIONS=1``
    Use the pure-Python twin even where the compiled one is built.
``MAGNETAR_REQUIRE_NATIVE=1``
    Fail with an ImportError, instead of falling back, when a compiled module is
    missing, so a test run can never silently exercise only one twin.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.hotpath.protocols import (
    AcksModule,
    BatchingModule,
    CountersModule,
    DirectModule,
    DispatchModule,
    SerdeModule,
    StatsModule,
)

__all__ = ["PUBLIC", "HotPath", "default_twin", "load", "native_available"]

#: Public names of every hot-path module; both twins must define all of them.
PUBLIC: dict[str, tuple[str, ...]] = {
    "serde": (
        "KIND_BYTES",
        "KIND_STRING",
        "KIND_JSON",
        "KIND_PICKLE",
        "KIND_IDENTITY",
        "KIND_USER",
        "Codec",
        "identity_decode",
        "identity_encode",
    ),
    "stats": ("InstanceStats", "LATEST_EXCEPTIONS"),
    "counters": ("StateBuffer", "MISSING"),
    "acks": ("ack_messages", "nack_messages", "PendingAcks", "DuplicateFilter", "position_of"),
    "dispatch": ("FAIL_USER", "FAIL_SYSTEM", "BatchOutcome", "Dispatcher", "format_error"),
    "batching": ("OutputSender", "INPUT_TOPIC_PROPERTY", "INPUT_MSG_ID_PROPERTY", "sequence_id_of"),
    "direct": (
        "attach",
        "attached",
        "consumer_view",
        "producer_view",
        "input_message_id_property",
        "send_record",
    ),
}

_BUILD_HELP = (
    "the compiled hot path is not built ({error}); build it with "
    "`pip install -e .` (needs Cython and a C compiler), or unset "
    "MAGNETAR_REQUIRE_NATIVE / set MAGNETAR_NO_EXTENSIONS=1 to run the pure-Python twin"
)


@dataclass(frozen=True, slots=True)
class HotPath:
    """The hot-path modules of one twin, as attributes (``hp.serde.Codec`` …).

    Each attribute is typed by the protocol of its module
    (:mod:`engine.hotpath.protocols`), so mypy checks every call made through it
    whichever twin runs.

    Attributes
    ----------
    name
        ``"native"`` or ``"pure"``.
    """

    name: str
    serde: SerdeModule
    stats: StatsModule
    counters: CountersModule
    acks: AcksModule
    dispatch: DispatchModule
    batching: BatchingModule
    direct: DirectModule


if TYPE_CHECKING:
    # mypy proves here that each module of both twins (the pure modules, and the
    # compiled ones through their .pyi stubs) conforms to its protocol, constructors
    # included. Nothing of this runs.
    from engine.hotpath import acks, batching, counters, direct, dispatch, protocols, serde, stats
    from engine.hotpath.native import acks as _nacks
    from engine.hotpath.native import batching as _nbatching
    from engine.hotpath.native import counters as _ncounters
    from engine.hotpath.native import direct as _ndirect
    from engine.hotpath.native import dispatch as _ndispatch
    from engine.hotpath.native import serde as _nserde
    from engine.hotpath.native import stats as _nstats

    _p_serde: SerdeModule = serde
    _n_serde: SerdeModule = _nserde
    _p_stats: StatsModule = stats
    _n_stats: StatsModule = _nstats
    _p_counters: CountersModule = counters
    _n_counters: CountersModule = _ncounters
    _p_acks: AcksModule = acks
    _n_acks: AcksModule = _nacks
    _p_dispatch: DispatchModule = dispatch
    _n_dispatch: DispatchModule = _ndispatch
    _p_batching: BatchingModule = batching
    _n_batching: BatchingModule = _nbatching
    _p_direct: DirectModule = direct
    _n_direct: DirectModule = _ndirect

    _p_codec: protocols.CodecType = serde.Codec
    _n_codec: protocols.CodecType = _nserde.Codec
    _p_stats_t: protocols.InstanceStatsType = stats.InstanceStats
    _n_stats_t: protocols.InstanceStatsType = _nstats.InstanceStats
    _p_buffer: protocols.StateBufferType = counters.StateBuffer
    _n_buffer: protocols.StateBufferType = _ncounters.StateBuffer
    _p_pending: protocols.PendingAcksType = acks.PendingAcks
    _n_pending: protocols.PendingAcksType = _nacks.PendingAcks
    _p_filter: protocols.DuplicateFilterType = acks.DuplicateFilter
    _n_filter: protocols.DuplicateFilterType = _nacks.DuplicateFilter
    _p_outcome: protocols.BatchOutcomeType = dispatch.BatchOutcome
    _n_outcome: protocols.BatchOutcomeType = _ndispatch.BatchOutcome
    _p_dispatcher: protocols.DispatcherType = dispatch.Dispatcher
    _n_dispatcher: protocols.DispatcherType = _ndispatch.Dispatcher
    _p_sender: protocols.OutputSenderType = batching.OutputSender
    _n_sender: protocols.OutputSenderType = _nbatching.OutputSender


def _import_twin(twin: str) -> HotPath:
    package = "engine.hotpath.native" if twin == "native" else "engine.hotpath"
    modules: dict[str, Any] = {}
    for module_name, names in PUBLIC.items():
        module = importlib.import_module(f"{package}.{module_name}")
        missing = [n for n in names if not hasattr(module, n)]
        if missing:
            raise ImportError(f"{package}.{module_name} lacks {', '.join(missing)}")
        modules[module_name] = module
    return HotPath(name=twin, **modules)


_cache: dict[str, HotPath] = {}


def native_available() -> bool:
    """True when every compiled module imports."""
    try:
        load("native")
    except ImportError:
        return False
    return True


def default_twin() -> str:
    """The twin the environment asks for: ``"pure"`` or ``"native"``."""
    if os.environ.get("MAGNETAR_NO_EXTENSIONS") == "1":
        if os.environ.get("MAGNETAR_REQUIRE_NATIVE") == "1":
            raise ImportError("MAGNETAR_NO_EXTENSIONS=1 and MAGNETAR_REQUIRE_NATIVE=1 contradict each other")
        return "pure"
    if os.environ.get("MAGNETAR_REQUIRE_NATIVE") == "1":
        return "native"
    return "native" if native_available() else "pure"


def load(twin: str | None = None) -> HotPath:
    """The hot path of ``twin`` (``"native"`` or ``"pure"``), default from the environment."""
    if twin is None:
        twin = default_twin()
    if twin not in ("native", "pure"):
        raise ValueError(f"unknown hot-path twin {twin!r}: expected 'native' or 'pure'")
    cached = _cache.get(twin)
    if cached is not None:
        return cached
    try:
        hot = _import_twin(twin)
    except ImportError as exc:
        if twin == "native":
            raise ImportError(_BUILD_HELP.format(error=exc)) from exc
        raise
    _cache[twin] = hot
    return hot
