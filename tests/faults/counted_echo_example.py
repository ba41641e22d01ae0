"""Counts each input in the function's state under its own key and echoes it with a ``!``."""

from pulsar import Function


class CountedEcho(Function):  # type: ignore[misc]
    def process(self, input, context):  # type: ignore[no-untyped-def]
        context.incr_counter(input, 1)
        return input + "!"
