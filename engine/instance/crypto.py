"""End-to-end encryption of a function's inputs and output through pulsar-client's ``CryptoKeyReader``.

Apache's ``CryptoConfig`` (``inputSpecs.{topic}.cryptoConfig``, ``producerConfig.cryptoConfig``)
names a key-reader class and its config: as Apache's Python instance does, an empty name
or ``pulsar.CryptoKeyReader`` is the client's own reader created with the config as
keyword arguments (``public_key_path``, ``private_key_path``); any other name is a
``pulsar.CryptoKeyReader`` subclass imported from the function's code and created the same
way. Payloads are encrypted and decrypted inside the client: the hot path never sees the
difference.
"""

from __future__ import annotations

from typing import Any

import pulsar

from engine.function.errors import FunctionLoadError
from engine.function.loader import import_object

__all__ = ["consumer_crypto_options", "key_reader", "producer_crypto_options"]

_DEFAULT_READERS = ("", "pulsar.CryptoKeyReader", "CryptoKeyReader")

_CONSUMER_ACTIONS = {
    "FAIL": pulsar.ConsumerCryptoFailureAction.FAIL,
    "DISCARD": pulsar.ConsumerCryptoFailureAction.DISCARD,
    "CONSUME": pulsar.ConsumerCryptoFailureAction.CONSUME,
}


def key_reader(conf: dict[str, Any], where: str) -> pulsar.CryptoKeyReader:
    """The key reader a CryptoConfig names; raises :class:`FunctionLoadError` naming ``where``."""
    name = conf.get("cryptoKeyReaderClassName") or ""
    kwargs = dict(conf.get("cryptoKeyReaderConfig") or {})
    cls: Any = pulsar.CryptoKeyReader if name in _DEFAULT_READERS else import_object(name)
    if not (isinstance(cls, type) and issubclass(cls, pulsar.CryptoKeyReader)):
        raise FunctionLoadError(
            f"{where}.cryptoKeyReaderClassName {name!r}: expected a pulsar.CryptoKeyReader class"
        )
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise FunctionLoadError(
            f"{where}.cryptoKeyReaderConfig: could not create {cls.__name__}: {type(exc).__name__}: {exc}"
        ) from exc


def consumer_crypto_options(conf: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """``subscribe`` keyword arguments for an input's CryptoConfig (empty without one)."""
    if not conf:
        return {}
    action = (conf.get("consumerCryptoFailureAction") or "FAIL").upper()
    return {"crypto_key_reader": key_reader(conf, where), "crypto_failure_action": _CONSUMER_ACTIONS[action]}


def producer_crypto_options(conf: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """``create_producer`` keyword arguments for the output's CryptoConfig (empty without one)."""
    if not conf:
        return {}
    keys = conf.get("encryptionKeys") or []
    return {"crypto_key_reader": key_reader(conf, where), "encryption_key": keys[0]}
