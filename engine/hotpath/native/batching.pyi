from typing import Any

INPUT_TOPIC_PROPERTY: str
INPUT_MSG_ID_PROPERTY: str

class OutputSender:
    producer: Any
    builder: Any
    input_properties: bool
    forward_properties: bool
    forward_key: bool
    count: int
    def __init__(
        self,
        producer: Any,
        builder: Any,
        *,
        input_properties: bool = ...,
        forward_properties: bool = ...,
        forward_key: bool = ...,
    ) -> None: ...
    def __call__(self, payload: bytes, source: Any) -> None: ...
