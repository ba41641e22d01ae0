"""A word count as a user would write it: one counter per word, in the function's state."""

from pulsar import Function


class WordCount(Function):  # type: ignore[misc]
    def process(self, input, context):  # type: ignore[no-untyped-def]
        for word in input.split():
            context.incr_counter(word, 1)
        context.incr_counter("__lines__", 1)
