"""The compiled hot path keeps out of the client's private objects, down to its binaries.

The check the project uses for "only engine/broker touches pulsar-client's private
objects" is a grep over engine/ that also reads the compiled modules; Cython keeps the
names of Python identifiers in the binaries (function symbols, debug information), so
a ``self._producer`` in a .pyx would show up there. This runs the same pattern on the
bytes of every built module.
"""

from __future__ import annotations

import pathlib
import re

import engine.hotpath.native as native_package
from engine.hotpath import load

# The pattern of the done-criterion's grep (BRE alternatives, dots escaped).
PRIVATE = re.compile(rb"\._consumer|\._producer|\._reader|_client\._client|import _pulsar")


def test_compiled_modules_name_no_private_client_object() -> None:
    load("native")  # fails (MAGNETAR_REQUIRE_NATIVE) when the modules are not built
    directory = pathlib.Path(native_package.__file__).parent
    binaries = sorted(p for p in directory.iterdir() if p.suffix in (".so", ".pyd"))
    built = {p.name.split(".")[0] for p in binaries}
    assert built >= {"acks", "batching", "counters", "dispatch", "serde", "stats"}
    for path in binaries:
        found = PRIVATE.findall(path.read_bytes())
        assert not found, (path.name, found[:5])
