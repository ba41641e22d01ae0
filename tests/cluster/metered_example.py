"""A function in Apache's example style that records a metric and fails on demand."""

from pulsar import Function


class Metered(Function):  # type: ignore[misc]
    def process(self, input, context):  # type: ignore[no-untyped-def]
        context.record_metric("input_size", len(input))
        if input.startswith("boom"):
            raise ValueError(input)
        if input == "unencodable":
            return object()  # the output SerDe cannot serialize it: a system exception
        return input + "!"
