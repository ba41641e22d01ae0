from typing import Any

from engine.hotpath import protocols

INPUT_TOPIC_PROPERTY: str
INPUT_MSG_ID_PROPERTY: str

def sequence_id_of(source: Any) -> int: ...

class OutputSender(protocols.OutputSender):
    producer: Any
    builder: Any
    input_properties: bool
    forward_properties: bool
    forward_key: bool
    sequence_ids: bool
    count: int
    def __init__(
        self,
        producer: Any,
        builder: Any,
        *,
        input_properties: bool = ...,
        forward_properties: bool = ...,
        forward_key: bool = ...,
        sequence_ids: bool = ...,
    ) -> None: ...
    def __call__(self, payload: bytes, source: Any) -> None: ...
