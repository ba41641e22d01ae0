"""Runtime knobs of an instance that are not part of the FunctionConfig."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InstanceOptions"]


@dataclass
class InstanceOptions:
    """Batching, redelivery and shutdown settings of one instance.

    Attributes
    ----------
    batch_max_messages, batch_timeout_ms
        The ``batch_receive`` policy of the input consumer.
    nack_delay_ms
        Redelivery delay after a negative ack (``timeoutMs`` replaces it when set).
    input_message_properties
        Give outputs ``__pfn_input_topic__`` and ``__pfn_input_msg_id__`` (about 4 µs a message).
    function_version
        The metadata version reported by ``context.get_function_version()``.
    stop_grace_s
        How long a stop waits for in-flight outputs before closing.
    crash_ledger
        A file recording the inputs in flight, so a death of the process is attributed to
        the input that caused it (see :mod:`engine.instance.crashes`).
    stall_warning_s
        A batch still inside the function's code after this long shows in status
        (``"in process() for 12 s"``).
    replace_process_on_timeout
        A call past ``timeoutMs`` ends the process (the process runtime's child sets it) so
        that the runtime replaces it; otherwise the call is abandoned on its thread.
    output_log
        A file for the function's log records and everything it prints (the worker's thread
        runtime sets it, so output is attributed to the function, not to the worker).
    """

    batch_max_messages: int = 1000
    batch_timeout_ms: int = 2
    nack_delay_ms: int = 1000
    input_message_properties: bool = False
    function_version: str = "0"
    stop_grace_s: float = 10.0
    output_log: str | None = None
    crash_ledger: str | None = None
    stall_warning_s: float = 10.0
    replace_process_on_timeout: bool = False
