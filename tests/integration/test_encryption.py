"""End-to-end encryption through pulsar-client's ``CryptoKeyReader``, on the real broker and both twins.

Apache's CryptoConfig names the key reader and its config; the keys are RSA pairs made
by the test. An encrypted input is decrypted for the function, and the output is
encrypted so that only a consumer with the private key reads it.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pulsar
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.broker import EmbeddedBroker
from engine.config import ConfigError, parse_function_config, resolve
from engine.hotpath import HotPath
from tests.integration.harness import runner_for


def _key_pair(directory: Path, name: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = directory / f"{name}-private.pem"
    pub = directory / f"{name}-public.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    os.chmod(priv, 0o600)
    return {"public_key_path": str(pub), "private_key_path": str(priv)}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("keys")
    os.chmod(directory, 0o700)
    return _key_pair(directory, "app")


def _read(client: pulsar.Client, topic: str, count: int, **kwargs: Any) -> list[bytes]:
    consumer = client.subscribe(
        topic,
        f"reader-{uuid.uuid4().hex[:6]}",
        initial_position=pulsar.InitialPosition.Earliest,
        consumer_type=pulsar.ConsumerType.Shared,  # pulsar-lite may repeat entries to Exclusive consumers
        **kwargs,
    )
    got: list[bytes] = []
    deadline = time.monotonic() + 30.0
    try:
        while len(got) < count and time.monotonic() < deadline:
            try:
                msg = consumer.receive(200)
            except pulsar.Timeout:
                continue
            got.append(msg.data())
            consumer.acknowledge(msg)
    finally:
        consumer.close()
    return got


def test_encrypted_input_is_decrypted_and_the_output_encrypted(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    hot: HotPath,
    data_dir: str,
    topic_prefix: str,
    keys: dict[str, str],
) -> None:
    inp, out = f"{topic_prefix}-secret-in", f"{topic_prefix}-secret-out"
    crypto = {"cryptoKeyReaderClassName": "pulsar.CryptoKeyReader", "cryptoKeyReaderConfig": keys}
    config = {
        "className": "Exclaim",
        "inputSpecs": {
            inp: {"schemaType": "STRING", "cryptoConfig": {**crypto, "consumerCryptoFailureAction": "FAIL"}}
        },
        "output": out,
        "outputSchemaType": "STRING",
        "producerConfig": {"cryptoConfig": {**crypto, "encryptionKeys": ["app"]}},
    }
    words = [f"secret{i}" for i in range(20)]
    reader = pulsar.CryptoKeyReader(keys["public_key_path"], keys["private_key_path"])
    with runner_for(broker.url, hot.name, data_dir, config) as runner:
        producer = client.create_producer(inp, encryption_key="app", crypto_key_reader=reader)
        for w in words:
            producer.send(w.encode())
        producer.close()
        plain = _read(client, out, len(words), crypto_key_reader=reader)
        # Without the key, a consumer that takes undecryptable messages sees ciphertext only.
        # (an encrypted batch cannot be split without the key: it arrives as one message).
        raw = _read(client, out, 1, crypto_failure_action=pulsar.ConsumerCryptoFailureAction.CONSUME)
        status = runner.status()
    assert sorted(p.decode() for p in plain) == sorted(w + "!" for w in words)
    assert raw and not any(w.encode() in r for r in raw for w in words)
    assert sum(i["numUserExceptions"] + i["numSystemExceptions"] for i in status) == 0


def test_crypto_configs_are_checked_as_apache_checks_them() -> None:
    base = {"className": "m.F", "inputs": ["a"], "output": "b"}
    with pytest.raises(ConfigError) as info:
        resolve(
            parse_function_config(
                {
                    **base,
                    "producerConfig": {
                        "cryptoConfig": {"cryptoKeyReaderClassName": "pulsar.CryptoKeyReader"}
                    },
                    "inputSpecs": {"a": {"cryptoConfig": {"consumerCryptoFailureAction": "IGNORE"}}},
                }
            )
        )
    text = str(info.value)
    assert "producerConfig.cryptoConfig.encryptionKeys" in text
    assert "inputSpecs[a].cryptoConfig.cryptoKeyReaderClassName" in text
    assert "inputSpecs[a].cryptoConfig.consumerCryptoFailureAction" in text


def test_producer_crypto_failure_action_send_is_warned_and_more_than_one_key_refused() -> None:
    crypto = {"cryptoKeyReaderClassName": "pulsar.CryptoKeyReader", "encryptionKeys": ["k"]}
    base = {"className": "m.F", "inputs": ["a"], "output": "b"}
    spec = resolve(
        parse_function_config(
            {**base, "producerConfig": {"cryptoConfig": {**crypto, "producerCryptoFailureAction": "SEND"}}}
        )
    )
    assert [f for f, _ in spec.ignored] == ["producerConfig.cryptoConfig.producerCryptoFailureAction"]
    with pytest.raises(ConfigError, match="the Python client encrypts with one key"):
        resolve(
            parse_function_config(
                {**base, "producerConfig": {"cryptoConfig": {**crypto, "encryptionKeys": ["k", "l"]}}}
            )
        )
