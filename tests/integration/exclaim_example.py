"""The example from the README, as a user would write it."""

from pulsar import Function


class Exclaim(Function):  # type: ignore[misc]
    def process(self, input, context):  # type: ignore[no-untyped-def]
        return input + "!"
