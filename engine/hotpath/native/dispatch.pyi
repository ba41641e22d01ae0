from collections.abc import Callable
from typing import Any

from engine.hotpath import protocols
from engine.hotpath.protocols import Codec, InstanceStats, SendOutput

FAIL_USER: int
FAIL_SYSTEM: int

def format_error(exc: BaseException) -> str: ...

class BatchOutcome(protocols.BatchOutcome):
    sent: list[int]
    done: list[int]
    failed: list[tuple[int, int, str]]
    def __init__(self) -> None: ...

class Dispatcher(protocols.Dispatcher):
    function: Callable[..., Any]
    pass_context: bool
    context: Any
    codecs: dict[str, Codec]
    default_codec: Codec
    output_codec: Codec | None
    send: SendOutput | None
    stats: InstanceStats
    timeout_ms: int
    def __init__(
        self,
        function: Callable[..., Any],
        pass_context: bool,
        context: Any,
        codecs: dict[str, Codec],
        default_codec: Codec,
        output_codec: Codec | None,
        send: SendOutput | None,
        stats: InstanceStats,
        timeout_ms: int = ...,
    ) -> None: ...
    def run(self, messages: list[Any]) -> BatchOutcome: ...
