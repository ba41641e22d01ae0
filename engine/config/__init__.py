"""Function configuration: Pulsar's FunctionConfig, its defaults, and its validation."""

from engine.config.errors import ConfigError, ConfigProblem
from engine.config.function_config import (
    BatchingConfig,
    ConsumerConfig,
    FunctionConfig,
    ProducerConfig,
    Resources,
    WindowConfig,
    parse_function_config,
)
from engine.config.loader import build_function_config, load_config_file, merge_overrides
from engine.config.topics import is_valid_topic, normalize_topic
from engine.config.validation import FunctionSpec, InputSpec, resolve

__all__ = [
    "BatchingConfig",
    "ConfigError",
    "ConfigProblem",
    "ConsumerConfig",
    "FunctionConfig",
    "FunctionSpec",
    "InputSpec",
    "ProducerConfig",
    "Resources",
    "WindowConfig",
    "build_function_config",
    "is_valid_topic",
    "load_config_file",
    "merge_overrides",
    "normalize_topic",
    "parse_function_config",
    "resolve",
]
