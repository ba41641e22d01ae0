"""The functions bench/chaos.py runs: an ATLEAST_ONCE echo and an EFFECTIVELY_ONCE per-input counter."""

from pulsar import Function


class Echo(Function):  # type: ignore[misc]
    """Echoes each input with a ``!`` (what comes out shows what was processed)."""

    def process(self, input, context):  # type: ignore[no-untyped-def]
        return input + "!"


class CountEach(Function):  # type: ignore[misc]
    """Counts each input under its own key: a counter of 2 is a duplicate, a missing one a loss."""

    def process(self, input, context):  # type: ignore[no-untyped-def]
        context.incr_counter(input, 1)
