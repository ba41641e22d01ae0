"""A function that ends its process on ``boom`` (as a crashing C extension would), as a user ships it."""

import os

from pulsar import Function


class Crasher(Function):  # type: ignore[misc]
    def process(self, input, context):  # type: ignore[no-untyped-def]
        if input == "boom":
            os._exit(1)
        return input + "!"
