"""Every field of Pulsar's FunctionConfig is accepted: honoured, or warned about once."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import pytest
import yaml

from engine.config import ConfigError, build_function_config, parse_function_config, resolve
from engine.config.patterns import combined_pattern

#: The fields of Pulsar's FunctionConfig (FunctionConfig.java), as its JSON/YAML names them.
APACHE_FUNCTION_CONFIG_FIELDS = {
    "runtimeFlags", "tenant", "namespace", "name", "className", "inputs", "customSerdeInputs",
    "topicsPattern", "customSchemaInputs", "customSchemaOutputs", "inputSpecs", "inputTypeClassName",
    "output", "producerConfig", "outputSchemaType", "outputTypeClassName", "outputSerdeClassName",
    "logTopic", "logLevel", "processingGuarantees", "retainOrdering", "retainKeyOrdering",
    "batchBuilder", "forwardSourceMessageProperty", "userConfig", "secrets", "runtime", "autoAck",
    "maxMessageRetries", "deadLetterTopic", "subName", "parallelism", "resources", "fqfn",
    "windowConfig", "timeoutMs", "jar", "py", "go", "functionType", "cleanupSubscription",
    "customRuntimeOptions", "maxPendingAsyncRequests", "exposePulsarAdminClientEnabled",
    "skipToLatest", "subscriptionPosition",
}  # fmt: skip
#: ConsumerConfig (an inputSpecs value), with Jackson's name for ``isRegexPattern``.
APACHE_CONSUMER_CONFIG_FIELDS = {
    "schemaType", "serdeClassName", "regexPattern", "schemaProperties", "consumerProperties",
    "receiverQueueSize", "cryptoConfig", "messagePayloadProcessorConfig", "poolMessages",
}  # fmt: skip
APACHE_PRODUCER_CONFIG_FIELDS = {
    "maxPendingMessages", "maxPendingMessagesAcrossPartitions", "useThreadLocalProducers",
    "cryptoConfig", "batchBuilder", "compressionType", "batchingConfig",
}  # fmt: skip
#: Fields a valid Python function config cannot hold together with the rest, each with the
#: variant below that covers it: Java/Go code, windows (Java only), and the either-or pairs.
LEFT_OUT = {"jar", "go", "windowConfig", "topicsPattern", "outputSerdeClassName"}
#: Set in the file but without effect on a Python function: one warning each.
WARNED = {
    "functionType",
    "inputTypeClassName",
    "outputTypeClassName",
    "runtimeFlags",
    "exposePulsarAdminClientEnabled",
    "producerConfig.useThreadLocalProducers",
    "inputSpecs[spec-in].messagePayloadProcessorConfig",
    "inputSpecs[spec-in].poolMessages",
}

EVERY_FIELD_YAML = """
runtimeFlags: "-X importtime"
tenant: public
namespace: default
name: {name}
fqfn: public/default/{name}
className: exclamation.Exclamation
functionType: PYTHON_FUNCTION
py: /tmp/exclamation.py
runtime: PYTHON
inputs: [plain-in]
customSerdeInputs:
  serde-in: serde.Plain
customSchemaInputs:
  schema-in: STRING
inputSpecs:
  spec-in:
    schemaType: STRING
    regexPattern: false
    schemaProperties: {{a: b}}
    consumerProperties: {{c: d}}
    receiverQueueSize: 50
    cryptoConfig:
      cryptoKeyReaderClassName: my.KeyReader
      cryptoKeyReaderConfig: {{key: value}}
    messagePayloadProcessorConfig:
      className: my.PayloadProcessor
      config: {{x: y}}
    poolMessages: true
inputTypeClassName: java.lang.String
output: out
outputSchemaType: STRING
outputTypeClassName: java.lang.String
customSchemaOutputs:
  out: STRING
producerConfig:
  maxPendingMessages: 500
  maxPendingMessagesAcrossPartitions: 1000
  useThreadLocalProducers: true
  cryptoConfig:
    cryptoKeyReaderClassName: pulsar.CryptoKeyReader
    cryptoKeyReaderConfig: {{public_key_path: /keys/pub.pem, private_key_path: /keys/priv.pem}}
    encryptionKeys: [my-key]
    producerCryptoFailureAction: FAIL
  batchBuilder: KEY_BASED
  compressionType: ZSTD
  batchingConfig:
    enabled: true
    batchingMaxPublishDelayMs: 5
    batchingMaxMessages: 100
    batchingMaxBytes: 65536
    batchBuilder: KEY_BASED
logTopic: logs
logLevel: DEBUG
processingGuarantees: ATLEAST_ONCE
retainOrdering: false
retainKeyOrdering: true
batchBuilder: KEY_BASED
forwardSourceMessageProperty: false
userConfig: {{greeting: hello}}
secrets: {{password: s3cret}}
autoAck: true
maxMessageRetries: 3
deadLetterTopic: dlq
subName: my-sub
subscriptionPosition: Earliest
parallelism: 2
resources: {{cpu: 0.5, ram: 268435456, disk: 1073741824}}
timeoutMs: 5000
cleanupSubscription: false
customRuntimeOptions: '{{"env": "test"}}'
maxPendingAsyncRequests: 1000
exposePulsarAdminClientEnabled: true
skipToLatest: true
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "function.yaml"
    path.write_text(text)
    return path


def test_the_yaml_holds_every_apache_field() -> None:
    data = yaml.safe_load(EVERY_FIELD_YAML.format(name="f"))
    assert set(data) == APACHE_FUNCTION_CONFIG_FIELDS - LEFT_OUT
    # serdeClassName and schemaType are either-or (serdeClassName is covered by customSerdeInputs).
    assert set(data["inputSpecs"]["spec-in"]) == APACHE_CONSUMER_CONFIG_FIELDS - {"serdeClassName"}
    assert set(data["producerConfig"]) == APACHE_PRODUCER_CONFIG_FIELDS


def test_every_field_is_honoured_or_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    name = f"every{uuid.uuid4().hex[:6]}"
    path = _write(tmp_path, EVERY_FIELD_YAML.format(name=name))
    caplog.set_level(logging.WARNING, logger="engine.config")
    spec = resolve(build_function_config(str(path), {}))
    again = resolve(build_function_config(str(path), {}))  # a second resolve warns no more
    assert again.ignored == spec.ignored

    assert spec.fqfn == f"public/default/{name}"
    assert spec.log_level == "DEBUG"
    assert spec.subscription_name == "my-sub" and spec.subscription_position == "Earliest"
    assert spec.subscription_type == "KEY_SHARED" and spec.parallelism == 2
    assert spec.forward_source_message_property is False and spec.cleanup_subscription is False
    assert spec.skip_to_latest is True
    assert spec.producer.compression_type == "ZSTD" and spec.producer.batch_builder == "KEY_BASED"
    assert spec.max_message_retries == 3 and spec.dead_letter_topic == "persistent://public/default/dlq"
    topics = {i.topic.rsplit("/", 1)[-1]: i for i in spec.inputs}
    assert set(topics) == {"plain-in", "serde-in", "schema-in", "spec-in"}
    assert topics["serde-in"].serde_class_name == "serde.Plain"
    assert topics["spec-in"].receiver_queue_size == 50 and topics["spec-in"].is_regex_pattern is False
    assert spec.custom_runtime_options == {"env": "test"}

    assert {f for f, _why in spec.ignored} == WARNED
    warnings = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    for field in WARNED:
        matching = [w for w in warnings if f" {field} is accepted but has no effect: " in w]
        assert len(matching) == 1, (field, warnings)
    assert len(warnings) == len(WARNED)


def test_the_left_out_fields_in_their_own_configs() -> None:
    base = {"className": "m.F", "output": "out"}
    pattern = resolve(parse_function_config({**base, "topicsPattern": "persistent://public/default/in-.*"}))
    assert [(i.topic, i.is_regex_pattern) for i in pattern.inputs] == [
        ("persistent://public/default/in-.*", True)
    ]
    serde = resolve(parse_function_config({**base, "inputs": ["in"], "outputSerdeClassName": "s.Out"}))
    assert serde.output_serde_class_name == "s.Out"
    for field, value, reason in (
        ("jar", "f.jar", "Magnetar runs Python functions; give py"),
        ("go", "f", "Magnetar runs Python functions; give py"),
    ):
        with pytest.raises(ConfigError) as info:
            resolve(parse_function_config({**base, "inputs": ["in"], field: value}))
        assert [p.expected for p in info.value.problems] == [reason]


def test_window_config_runs_for_python() -> None:
    spec = resolve(
        parse_function_config(
            {"className": "m.F", "inputs": ["in"], "windowConfig": {"windowLengthCount": 10}}
        )
    )
    assert spec.window is not None and spec.window.length_count == 10 and spec.window.tumbling


def test_patterns_and_topics_of_one_namespace_join_into_one_pattern() -> None:
    spec = resolve(
        parse_function_config(
            {
                "className": "m.F",
                "inputs": ["a.b"],
                "topicsPattern": "persistent://public/default/b-.*",
                "inputSpecs": {"c-[0-9]+": {"regexPattern": True}},
            }
        )
    )
    topics = [i.topic for i in spec.inputs if not i.is_regex_pattern]
    patterns = [i.topic for i in spec.inputs if i.is_regex_pattern]
    combined = combined_pattern(topics, patterns)
    assert combined == r"persistent://public/default/(?:c-[0-9]+|b-.*|a\.b)"
    joined = re.compile(combined)
    for name in ("a.b", "b-1", "c-22"):
        assert joined.fullmatch(f"persistent://public/default/{name}"), name
    for name in ("axb", "c-x", "d-1"):
        assert not joined.fullmatch(f"persistent://public/default/{name}"), name
    assert combined_pattern([], ["persistent://public/default/in-.*"]) == "persistent://public/default/in-.*"


def test_patterns_across_namespaces_or_decodings_are_validation_errors() -> None:
    with pytest.raises(ConfigError) as info:
        resolve(parse_function_config({"className": "m.F", "inputs": ["t/other/a"], "topicsPattern": "b-.*"}))
    (problem,) = info.value.problems
    assert problem.field == "topicsPattern" and "must be in one namespace" in problem.expected
    with pytest.raises(ConfigError) as info:
        resolve(
            parse_function_config(
                {"className": "m.F", "customSerdeInputs": {"a": "serde.PickleSerDe"}, "topicsPattern": "b-.*"}
            )
        )
    assert "every input must use the same serdeClassName or schemaType" in info.value.problems[0].expected
    with pytest.raises(ConfigError) as info:
        resolve(parse_function_config({"className": "m.F", "topicsPattern": "b-(.*"}))
    assert "not a valid regular expression" in info.value.problems[0].expected


def test_fqfn_and_log_level_are_checked() -> None:
    with pytest.raises(ConfigError) as info:
        resolve(parse_function_config({"className": "m.F", "inputs": ["a"], "fqfn": "t/ns/f", "name": "g"}))
    assert [str(p) for p in info.value.problems] == ["fqfn: got 't/ns/f'; names name 'f' but name is 'g'"]
    with pytest.raises(ConfigError) as info:
        resolve(parse_function_config({"className": "m.F", "inputs": ["a"], "logLevel": "LOUD"}))
    assert info.value.problems[0].field == "logLevel"
    assert "expected one of TRACE, DEBUG, INFO, WARN" in info.value.problems[0].expected
    spec = resolve(parse_function_config({"className": "m.F", "inputs": ["a"], "logLevel": "warn"}))
    assert spec.log_level == "WARNING"


def test_forward_source_message_property_defaults_to_true() -> None:
    spec = resolve(parse_function_config({"className": "m.F", "inputs": ["a"]}))
    assert spec.forward_source_message_property is True
    assert spec.ignored == ()
