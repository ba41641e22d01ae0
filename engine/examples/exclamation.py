"""The classic example: append an exclamation mark to every input."""

from pulsar import Function


class ExclamationFunction(Function):
    """Return the input followed by ``!``."""

    def process(self, input: str, context: object) -> str:
        return input + "!"


def process(input: str) -> str:
    """The same as a module-level ("native") function."""
    return input + "!"
