"""The user's function: its package, its class or callable, and its SerDes."""

from engine.function.errors import FunctionLoadError
from engine.function.loader import LoadedFunction, add_code_paths, import_object, load_function
from engine.function.package import package_digest, prepare_package
from engine.function.serdes import DEFAULT_SERDE, BytesSerDe, JsonSerDe, StringSerDe, codec_for

__all__ = [
    "DEFAULT_SERDE",
    "BytesSerDe",
    "FunctionLoadError",
    "JsonSerDe",
    "LoadedFunction",
    "StringSerDe",
    "add_code_paths",
    "codec_for",
    "import_object",
    "load_function",
    "package_digest",
    "prepare_package",
]
