"""The C++ handles behind the client's consumer and producer, for the hot path's direct views.

The client library exports its C API beside the Python binding; the compiled hot path
(``engine.hotpath.native.direct``) calls it on the very consumer and producer the
binding created. This module is where those handles come from, and the only place
that knows how: pybind11's cross-module conduit (``_pybind11_conduit_v1_``) hands out
the address of the C++ object an instance holds once it is given that object's
``std::type_info`` and the ABI it was built for. The conduit checks both, so a binding
built differently yields no handle (the views are then not used) instead of a wrong
address.

Everything here is best effort and said once in the log: without a handle an instance
runs on the binding's own objects, as the pure-Python hot path always does.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import _pulsar
import pulsar

from engine.hotpath import HotPath

__all__ = ["attach", "consumer_view", "producer_view"]

log = logging.getLogger(__name__)

_TYPE_INFO_SYMBOLS = {"consumer": "_ZTIN6pulsar8ConsumerE", "producer": "_ZTIN6pulsar8ProducerE"}
_RTLD_NOLOAD = 4
_POINTER_KIND = b"raw_pointer_ephemeral"
_FUNCTION_RECORD = "pybind11_detail_function_record_v1_"

_lock = threading.Lock()
_type_infos: dict[str, Any] = {}
_attached: dict[str, str | None] = {}
_reported: set[str] = set()


def _report(reason: str) -> None:
    if reason not in _reported:
        _reported.add(reason)
        log.info("direct client views are not used: %s", reason)


def _abi_id() -> bytes | None:
    """The ABI id the binding was built for, as pybind11 names its function records."""
    name = type(_pulsar.MessageId.deserialize.__self__).__name__
    if not name.startswith(_FUNCTION_RECORD):
        return None
    return name[len(_FUNCTION_RECORD) :].encode("ascii")


def _type_info_capsule(kind: str) -> Any:
    """A capsule of the binding's ``std::type_info`` for ``kind`` (cached), or None."""
    if kind in _type_infos:
        return _type_infos[kind]
    capsule = None
    try:
        lib = ctypes.CDLL(_pulsar.__file__, mode=ctypes.RTLD_LOCAL | _RTLD_NOLOAD)
        address = ctypes.addressof(ctypes.c_char.in_dll(lib, _TYPE_INFO_SYMBOLS[kind]))
    except (OSError, ValueError) as exc:
        _report(f"the client exports no type information for its {kind}: {exc}")
    else:
        new = ctypes.pythonapi.PyCapsule_New
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        capsule = new(address, b"St9type_info", None)
    _type_infos[kind] = capsule
    return capsule


def attach(hot: HotPath) -> bool:
    """Attach ``hot``'s direct views to the client library (once); true when they can be used."""
    with _lock:
        if hot.name not in _attached:
            errors = {
                int(r): getattr(pulsar.exceptions, name, pulsar.PulsarException)
                for name, r in pulsar.Result.__members__.items()
            }
            reason = hot.direct.attach(
                _pulsar.__file__, _pulsar.MessageId.deserialize, errors, pulsar.PulsarException
            )
            _attached[hot.name] = reason
            if reason is not None and hot.name == "native":
                _report(reason)
        return _attached[hot.name] is None


def _handle(raw: Any, kind: str) -> Any:
    """A capsule of the C++ object behind the binding's ``raw`` consumer or producer, or None."""
    abi = _abi_id()
    type_info = _type_info_capsule(kind)
    if abi is None or type_info is None:
        if abi is None:
            _report("the binding's pybind11 ABI is unknown")
        return None
    try:
        capsule = raw._pybind11_conduit_v1_(abi, type_info, _POINTER_KIND)
    except (AttributeError, RuntimeError, TypeError) as exc:
        _report(f"the binding offers no handle of its {kind}: {exc}")
        return None
    if capsule is None:
        _report(f"the binding's {kind} did not match its type information")
    return capsule


def consumer_view(hot: HotPath, raw: Any) -> Any:
    """``raw`` (the binding's consumer) seen through ``hot``'s direct view, when it can be."""
    if not attach(hot):
        return raw
    return hot.direct.consumer_view(raw, _handle(raw, "consumer"))


def producer_view(hot: HotPath, raw: Any) -> Any:
    """``raw`` (the binding's producer) seen through ``hot``'s direct view, when it can be."""
    if not attach(hot):
        return raw
    return hot.direct.producer_view(raw, _handle(raw, "producer"))
