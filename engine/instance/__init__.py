"""A function instance: the loop around the hot path, and the Context it offers."""

from engine.instance.context import InstanceContext
from engine.instance.instance import DLQ_ERROR_PROPERTY, FunctionInstance, InstanceState
from engine.instance.options import InstanceOptions
from engine.instance.secrets import (
    ClearTextSecretsProvider,
    EnvironmentSecretsProvider,
    FileSecretsProvider,
    make_secrets_provider,
)

__all__ = [
    "DLQ_ERROR_PROPERTY",
    "ClearTextSecretsProvider",
    "EnvironmentSecretsProvider",
    "FileSecretsProvider",
    "FunctionInstance",
    "InstanceContext",
    "InstanceOptions",
    "InstanceState",
    "make_secrets_provider",
]
