"""The compiled hot path keeps out of the client's private objects, down to its binaries.

The check the project uses for "only engine/broker touches pulsar-client's private
objects" is a grep over engine/ that also reads the compiled modules. Cython names C
symbols after Python identifiers (an ``@property producer`` gives
``…OutputSender_producer``), and C debug information holds every C variable name
(``__pyx_v_consumer``), so a grep whose dots match any character (as an unescaped
pattern does) would report the binaries. The default build has no debug information
and no such symbol; a build with ``MAGNETAR_DEBUG_INFO=1`` is held to the exact pattern.
"""

from __future__ import annotations

import pathlib
import re

import engine.hotpath.native as native_package
from engine.hotpath import load

NAMES = (rb"._consumer", rb"._producer", rb"._reader", rb"_client._client", rb"import _pulsar")
#: The done-criterion's grep, dots escaped.
EXACT = re.compile(b"|".join(re.escape(n) for n in NAMES))
#: The same with every dot matching any byte.
LOOSE = re.compile(b"|".join(n.replace(b".", b"(?s:.)") for n in NAMES))


def test_compiled_modules_name_no_private_client_object() -> None:
    load("native")  # fails (MAGNETAR_REQUIRE_NATIVE) when the modules are not built
    directory = pathlib.Path(native_package.__file__).parent
    binaries = sorted(p for p in directory.iterdir() if p.suffix in (".so", ".pyd"))
    built = {p.name.split(".")[0] for p in binaries}
    assert built >= {"acks", "batching", "counters", "dispatch", "serde", "stats"}
    for path in binaries:
        data = path.read_bytes()
        pattern = EXACT if b".debug_info" in data else LOOSE
        found = pattern.findall(data)
        assert not found, (path.name, found[:5])
