"""Whether an instance reads its inputs through the compiled hot path's direct consumer view.

The direct views (:mod:`engine.broker.direct`) receive, acknowledge and send through
the client library's C API instead of its Python binding. The producer view is used
wherever the compiled hot path runs; the consumer view only where every accessor the
instance may call on an input is one a direct message has: no input schema or
decryption (those values come from the binding), a plain or threaded ``process`` call,
and acknowledgements the engine makes itself. ``MAGNETAR_DIRECT_VIEWS=0`` turns both
off, for comparison or diagnosis.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from engine.config.validation import FunctionSpec
from engine.function.loader import LoadedFunction
from engine.hotpath import HotPath

__all__ = ["consumer_view_refused", "use_consumer_view", "views_enabled"]

log = logging.getLogger(__name__)


def views_enabled(hot: HotPath) -> bool:
    """True when the compiled views may be used at all (the compiled twin, not switched off)."""
    return hot.name == "native" and os.environ.get("MAGNETAR_DIRECT_VIEWS", "1") != "0"


def consumer_view_refused(
    hot: HotPath, spec: FunctionSpec, function: LoadedFunction, inputs: Any
) -> str | None:
    """Why the instance's inputs are not read through the direct view; None when they are."""
    if not views_enabled(hot):
        return "the compiled hot path or its views are off"
    if inputs.schema is not None or inputs.crypto_options:
        return "the inputs have a schema or are decrypted"
    if spec.processing_guarantees not in ("ATLEAST_ONCE", "ATMOST_ONCE") or not spec.auto_ack:
        return f"{spec.processing_guarantees} with autoAck={spec.auto_ack}"
    if spec.window is not None or function.process_batch is not None or function.is_async:
        return "the function is windowed, batched or asynchronous"
    return None


def use_consumer_view(
    hot: HotPath, spec: FunctionSpec, function: LoadedFunction, inputs: Any, who: str
) -> bool:
    """Decide (and say at debug level) whether instance ``who`` reads through the direct view."""
    refused = consumer_view_refused(hot, spec, function, inputs)
    if refused:
        log.debug("%s: inputs through the binding's objects: %s", who, refused)
    return refused is None
