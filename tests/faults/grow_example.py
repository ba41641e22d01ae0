"""A function package for the RAM limit test: holds 400 MB for a while on ``grow``."""

import time

from pulsar import Function


class Grow(Function):  # type: ignore[misc]
    def process(self, input, context):  # type: ignore[no-untyped-def]
        if input == "grow":
            held = b"x" * (400 * 2**20)  # written, so resident
            time.sleep(10)
            del held
        return input + "!"
