"""Functions used by the integration tests, one per behaviour under test."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pulsar
from pulsar import Function


class Exclaim(Function):  # type: ignore[misc]
    def process(self, input: Any, context: Any) -> Any:
        return input + "!"


class PlainProcess:
    def process(self, input: Any) -> Any:
        return input + "?"


class CallableClass:
    def __call__(self, input: Any) -> Any:
        return input + "~"


def plain_function(input: Any) -> Any:
    return input + "#"


class Describe(Function):  # type: ignore[misc]
    """Echo the decoded value's type and repr, to check SerDes."""

    def process(self, input: Any, context: Any) -> Any:
        return f"{type(input).__name__}:{input!r}"


class Doubler(Function):  # type: ignore[misc]
    def process(self, input: Any, context: Any) -> Any:
        return {"doubled": input["n"] * 2}


class Poison(Function):  # type: ignore[misc]
    """Fails on inputs containing 'poison', counts attempts in a user metric."""

    def process(self, input: Any, context: Any) -> Any:
        context.record_metric("attempts", 1)
        if "poison" in input:
            raise ValueError(f"cannot digest {input}")
        return input.upper()


class ContextEcho(Function):  # type: ignore[misc]
    """Report what the Context offers."""

    def process(self, input: Any, context: Any) -> Any:
        return json.dumps(
            {
                "input": input,
                "threshold": context.get_user_config_value("threshold"),
                "config": context.get_user_config_map(),
                "secret": context.get_secret("apiKey"),
                "missing_secret": context.get_secret("nope"),
                "key": context.get_message_key(),
                "props": context.get_message_properties(),
                "topic": context.get_current_message_topic_name(),
                "name": [
                    context.get_function_tenant(),
                    context.get_function_namespace(),
                    context.get_function_name(),
                ],
                "instance": context.get_instance_id(),
                "inputs": context.get_input_topics(),
                "output": context.get_output_topic(),
                "msgid_is_set": context.get_message_id() is not None,
                "partition_index": context.get_message_partition_index(),
                "serde": context.get_output_serde_class_name(),
                "client": isinstance(context.get_pulsar_client(), pulsar.Client),
            }
        )


class WordCount(Function):  # type: ignore[misc]
    """Counts words in state; returns the running count of the first word."""

    def process(self, input: Any, context: Any) -> Any:
        words = input.split()
        for w in words:
            context.incr_counter(w, 1)
        if words and words[0] == "reset":
            context.del_counter("reset")
        context.put_state("last", input)
        first = words[0] if words else ""
        return f"{first}={context.get_counter(first)} last={context.get_state('last').decode()}"


class Publisher(Function):  # type: ignore[misc]
    """Publishes a copy to a side topic with properties, and records callbacks."""

    callbacks: list[Any] = []

    def process(self, input: Any, context: Any) -> Any:
        side = context.get_user_config_value("side")
        context.publish(
            side,
            input + "-side",
            properties={"origin": "publisher"},
            callback=lambda res, mid: Publisher.callbacks.append(str(res)),
        )
        context.record_metric("lengths", len(input))
        return None


class Logger(Function):  # type: ignore[misc]
    def process(self, input: Any, context: Any) -> Any:
        context.get_logger().info("saw %s", input)
        return input


class ManualAck(Function):  # type: ignore[misc]
    """Acks only inputs starting with 'ack'."""

    def process(self, input: Any, context: Any) -> Any:
        if input.startswith("ack"):
            context.ack(context.get_message_id(), context.get_current_message_topic_name())
        return input


class Flaky(Function):  # type: ignore[misc]
    """Fails every input the first time it sees it, then succeeds."""

    seen: set[str] = set()

    def process(self, input: Any, context: Any) -> Any:
        if input not in Flaky.seen:
            Flaky.seen.add(input)
            raise RuntimeError("first attempt fails")
        return input


class AlwaysFails(Function):  # type: ignore[misc]
    def process(self, input: Any, context: Any) -> Any:
        raise RuntimeError("always")


class Slow(Function):  # type: ignore[misc]
    def process(self, input: Any, context: Any) -> Any:
        if input.startswith("slow"):
            import time

            time.sleep(0.3)
        return input


class CountWords(Function):  # type: ignore[misc]
    """Adds one to a counter per word; fails, after counting, on lines containing 'poison'."""

    def process(self, input: Any, context: Any) -> Any:
        words = input.split()
        for w in words:
            context.incr_counter(w, 1)
        if "poison" in words:
            raise ValueError("poisoned line")
        return str(len(words))


class AsyncKeyed(Function):  # type: ignore[misc]
    """Awaits a little (longer for earlier inputs, so calls finish out of order) and names its key."""

    async def process(self, input: Any, context: Any) -> Any:
        import asyncio

        index = int(input.split("-")[-1])
        await asyncio.sleep(0.001 * (5 - index % 5))
        if input.startswith("hang"):
            await asyncio.sleep(3600)
        return f"{input}@{context.get_message_key()}"


async def async_module_process(input: Any) -> Any:
    """A module-level coroutine function."""
    return input + "~"


class BlockingKeyed(Function):  # type: ignore[misc]
    """Blocks a little (longer for earlier inputs) and names its key; counts words in state."""

    def process(self, input: Any, context: Any) -> Any:
        import time

        index = int(input.split("-")[-1])
        time.sleep(0.001 * (5 - index % 5))
        context.incr_counter("calls", 1)
        return f"{input}@{context.get_message_key()}"


class BatchDouble(Function):  # type: ignore[misc]
    """Doubles a whole batch of numbers at once."""

    def process(self, input: Any, context: Any) -> Any:
        raise AssertionError("process_batch is called instead")

    def process_batch(self, inputs: Any, context: Any) -> Any:
        import numpy as np

        assert isinstance(inputs, np.ndarray)
        return list(inputs * 2)


class AsyncCounter(Function):  # type: ignore[misc]
    """An async word counter for EFFECTIVELY_ONCE."""

    async def process(self, input: Any, context: Any) -> Any:
        import asyncio

        await asyncio.sleep(0)
        context.incr_counter(input, 1)
        return None


class WindowSum(Function):  # type: ignore[misc]
    """Sums a window of numbers; names the window's bounds; counts windows and the total in state."""

    def process(self, inputs: Any, context: Any) -> Any:
        total = sum(int(x) for x in inputs)
        context.incr_counter("windows", 1)
        context.incr_counter("sum", total)
        return f"{len(inputs)}:{total}:{context.get_window_start()}:{context.get_window_end()}"


def window_sum(inputs: Any) -> Any:
    """A module-level window function."""
    return str(sum(inputs))


class EventTime:
    """Timestamp extractor: the input is ``"<event time ms>:<value>"``."""

    def extract_timestamp(self, value: Any) -> int:
        return int(str(value).split(":")[0])


class EventWindowCount(Function):  # type: ignore[misc]
    def process(self, inputs: Any, context: Any) -> Any:
        return f"{context.get_window_end()}:{len(inputs)}"


class Chatty(Function):  # type: ignore[misc]
    """Prints to stdout and stderr while processing."""

    def process(self, input: Any, context: Any) -> Any:
        import sys

        print(f"hello {input}")
        print(f"careful with {input}", file=sys.stderr)
        return input


class Crasher(Function):  # type: ignore[misc]
    """Ends its process abruptly on ``boom`` (as a crashing C extension or os._exit would)."""

    def process(self, input: Any, context: Any) -> Any:
        if input == "boom":
            import os

            os._exit(1)
        return input + "!"


#: Opened by a test to let :class:`Gated` return (the thread runtime runs in the test's process).
GATE = __import__("threading").Event()


class Gated(Function):  # type: ignore[misc]
    """Holds every call until the test opens :data:`GATE`."""

    def process(self, input: Any, context: Any) -> Any:
        if not GATE.wait(60):
            raise TimeoutError("the gate was never opened")
        return input


class Hang(Function):  # type: ignore[misc]
    """Never returns on ``hang`` (as a call stuck on a dead socket would)."""

    def process(self, input: Any, context: Any) -> Any:
        if input == "hang":
            import time

            time.sleep(3600)
        return input + "!"


_HUNG_ON: set[str] = set()


class HangOnce(Function):  # type: ignore[misc]
    """Hangs on the first ``hang`` of each input topic; later copies return at once."""

    def process(self, input: Any, context: Any) -> Any:
        topic = context.get_current_message_topic_name()
        if input == "hang" and topic not in _HUNG_ON:
            import time

            _HUNG_ON.add(topic)
            time.sleep(3600)
        return input + "!"


#: Set by a test to let the calls of :class:`HangWindow` and :class:`HangBatch` return.
RELEASE_HANGS = threading.Event()


class HangWindow(Function):  # type: ignore[misc]
    """Joins a window's inputs; a window holding ``hang`` does not return until released."""

    def process(self, inputs: Any, context: Any) -> Any:
        if "hang" in inputs:
            RELEASE_HANGS.wait(3600)
            context.incr_counter("after-abandon", 1)  # refused: the call was abandoned
        return "+".join(inputs)


class HangBatch(Function):  # type: ignore[misc]
    """``process_batch``: a batch holding ``hang`` does not return until released."""

    def process(self, input: Any, context: Any) -> Any:
        raise AssertionError("process_batch is called instead")

    def process_batch(self, inputs: Any, context: Any) -> Any:
        if "hang" in inputs:
            RELEASE_HANGS.wait(3600)
        return [x + "!" for x in inputs]


class CrashOnce(Function):  # type: ignore[misc]
    """Ends its process on the first ``boom`` (marked by creating the file user config ``marker`` names)."""

    def process(self, input: Any, context: Any) -> Any:
        marker = context.get_user_config_value("marker")
        if input == "boom" and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return input + "!"
