"""The functions of ``bench/wordcount.py``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pulsar import Function

#: The store the per-message contender writes to (set by the benchmark's child process).
STORE: Any = None


class WordCount(Function):  # type: ignore[misc]
    """One counter per word, through the Context (committed once per batch)."""

    def process(self, input: str, context: Any) -> None:
        for word in input.split():
            context.incr_counter(word, 1)


class PerMessageWordCount(Function):  # type: ignore[misc]
    """The same counts written to the store once per message, as a write-through runtime does."""

    def process(self, input: str, context: Any) -> None:
        STORE.commit(
            context.get_function_tenant()
            + "/"
            + context.get_function_namespace()
            + "/"
            + context.get_function_name(),
            dict(Counter(input.split())),
            set(),
            {},
        )
