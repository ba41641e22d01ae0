from typing import Any

from engine.hotpath import protocols

KIND_BYTES: int
KIND_STRING: int
KIND_JSON: int
KIND_PICKLE: int
KIND_IDENTITY: int
KIND_USER: int

def identity_decode(data: bytes | bytearray | memoryview) -> Any: ...
def identity_encode(value: Any) -> bytes: ...

class Codec(protocols.Codec):
    kind: int
    user: Any
    def __init__(self, kind: int, user: Any = ...) -> None: ...
    def decode(self, data: bytes | bytearray | memoryview) -> Any: ...
    def encode(self, value: Any) -> bytes: ...
