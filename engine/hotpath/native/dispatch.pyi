from collections.abc import Callable
from typing import Any

FAIL_USER: int
FAIL_SYSTEM: int

def format_error(exc: BaseException) -> str: ...

class BatchOutcome:
    sent: list[int]
    done: list[int]
    failed: list[tuple[int, int, str]]
    def __init__(self) -> None: ...

class Dispatcher:
    function: Callable[..., Any]
    pass_context: bool
    context: Any
    codecs: dict[str, Any]
    default_codec: Any
    output_codec: Any
    send: Callable[[bytes, Any], None] | None
    stats: Any
    timeout_ms: int
    def __init__(
        self,
        function: Callable[..., Any],
        pass_context: bool,
        context: Any,
        codecs: dict[str, Any],
        default_codec: Any,
        output_codec: Any,
        send: Callable[[bytes, Any], None] | None,
        stats: Any,
        timeout_ms: int = ...,
    ) -> None: ...
    def run(self, messages: list[Any]) -> BatchOutcome: ...
