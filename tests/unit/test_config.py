"""FunctionConfig parsing, defaults, derivations and validation messages."""

from __future__ import annotations

from typing import Any

import pytest

from engine.config import ConfigError, build_function_config, parse_function_config, resolve
from engine.config.topics import normalize_topic


def spec_of(**fields: Any) -> Any:
    base: dict[str, Any] = {"className": "mod.Fn", "inputs": ["in"]}
    base.update(fields)
    return resolve(parse_function_config(base))


def problems(**fields: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        spec_of(**fields)
    return [str(p) for p in info.value.problems]


def test_defaults_follow_pulsar() -> None:
    s = spec_of(output="out")
    assert (s.tenant, s.namespace, s.name) == ("public", "default", "Fn")
    assert s.inputs[0].topic == "persistent://public/default/in"
    assert s.output == "persistent://public/default/out"
    assert s.processing_guarantees == "ATLEAST_ONCE" and s.auto_ack is True
    assert s.parallelism == 1 and s.cleanup_subscription is True
    assert s.subscription_name == "public/default/Fn" and s.subscription_position == "Latest"
    assert (s.resources.cpu, s.resources.ram, s.resources.disk) == (1.0, 1073741824, 10737418240)


@pytest.mark.parametrize(
    ("fields", "sub_type"),
    [
        ({}, "SHARED"),
        ({"retainOrdering": True}, "FAILOVER"),
        ({"retainKeyOrdering": True}, "KEY_SHARED"),
        ({"processingGuarantees": "EFFECTIVELY_ONCE"}, "FAILOVER"),
    ],
)
def test_subscription_type_is_derived(fields: dict[str, Any], sub_type: str) -> None:
    assert spec_of(**fields).subscription_type == sub_type


def test_inputs_from_every_source_merge() -> None:
    s = spec_of(
        inputs=["a"],
        customSerdeInputs={"b": "serde.PickleSerDe"},
        customSchemaInputs={"c": "JSON"},
        inputSpecs={"a": {"serdeClassName": "x.Y", "receiverQueueSize": 50}},
        tenant="t1",
        namespace="ns",
    )
    by_topic = {i.topic: i for i in s.inputs}
    assert set(by_topic) == {"persistent://t1/ns/a", "persistent://t1/ns/b", "persistent://t1/ns/c"}
    assert by_topic["persistent://t1/ns/a"].serde_class_name == "x.Y"
    assert by_topic["persistent://t1/ns/a"].receiver_queue_size == 50
    assert by_topic["persistent://t1/ns/c"].schema_type == "JSON"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"inputs": []}, "inputs: at least one input topic is required"),
        ({"output": "in"}, "output: got 'in'; the output topic must not also be an input"),
        ({"parallelism": 0}, "parallelism: got 0; expected an integer greater than 0"),
        ({"timeoutMs": 0}, "timeoutMs: got 0; expected an integer greater than 0"),
        (
            {"timeoutMs": 5, "processingGuarantees": "ATMOST_ONCE"},
            "timeoutMs: got 5; only allowed with ATLEAST_ONCE",
        ),
        ({"deadLetterTopic": "dlq"}, "deadLetterTopic: got 'dlq'; needs maxMessageRetries >= 0"),
        (
            {"retainOrdering": True, "retainKeyOrdering": True},
            "retainOrdering and retainKeyOrdering cannot both",
        ),
        ({"autoAck": False, "processingGuarantees": "ATMOST_ONCE"}, "ATMOST_ONCE requires autoAck=true"),
        (
            {"processingGuarantees": "EFFECTIVELY_ONCE", "retainKeyOrdering": True},
            "retainKeyOrdering: got True; not allowed with EFFECTIVELY_ONCE",
        ),
        (
            {"windowConfig": {"windowLengthCount": 10, "windowLengthDurationMs": 5}},
            "give exactly one of windowLengthCount and windowLengthDurationMs",
        ),
        ({"windowConfig": {"windowLengthCount": 0}}, "windowConfig.windowLengthCount: got 0; expected an"),
        (
            {"windowConfig": {"windowLengthCount": 5, "lateDataTopic": "late"}},
            "windowConfig.lateDataTopic: got 'late'; needs timestampExtractorClassName",
        ),
        (
            {
                "processingGuarantees": "EFFECTIVELY_ONCE",
                "windowConfig": {"windowLengthCount": 4, "slidingIntervalCount": 2},
            },
            "EFFECTIVELY_ONCE needs a tumbling window",
        ),
        ({"concurrency": 0}, "concurrency: got 0; expected an integer from 1 to 1024"),
        ({"maxPendingAsyncRequests": 0}, "maxPendingAsyncRequests: got 0; expected an integer greater"),
        ({"resources": {"cpu": 0}}, "resources.cpu: got 0.0; expected a value greater than 0"),
        ({"inputs": ["bad topic"]}, "inputs: got 'bad topic'; not a valid topic name"),
        ({"logTopic": "a/b"}, "logTopic: got 'a/b'; not a valid topic name"),
        ({"py": None, "jar": "x.jar"}, "jar: got 'x.jar'; Magnetar runs Python functions; give py"),
        ({"className": None, "name": "f"}, "className: required for a Python function"),
        (
            {"inputSpecs": {"x": {"schemaType": "JSON", "serdeClassName": "a.B"}}},
            "give schemaType or serdeClassName",
        ),
        ({"inputSpecs": {"x": {"receiverQueueSize": -1}}}, "inputSpecs[x].receiverQueueSize: got -1"),
        ({"outputSchemaType": "XML", "output": "o"}, "outputSchemaType: got 'XML'; expected one of BYTES"),
        (
            {"producerConfig": {"maxPendingMessages": 0}, "output": "o"},
            "producerConfig.maxPendingMessages: got 0; expected an integer greater than 0",
        ),
        ({"name": "bad name"}, "name: got 'bad name'; expected letters, digits"),
    ],
)
def test_rejections_name_field_value_and_rule(fields: dict[str, Any], expected: str) -> None:
    found = problems(**fields)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    assert len(problems(parallelism=-1, timeoutMs=-5, output="in")) == 3


def test_parse_rejects_unknown_and_ill_typed_fields() -> None:
    with pytest.raises(ConfigError) as info:
        parse_function_config({"inputz": ["a"], "parallelism": "many", "autoAck": "yes", "userConfig": [1]})
    text = str(info.value)
    assert "inputz: unknown field; did you mean 'inputs'?" in text
    assert "parallelism: got 'many'; expected an integer" in text
    assert "autoAck: got 'yes'; expected true or false" in text
    assert "userConfig: got [1]; expected a mapping" in text


def test_enums_accept_any_case_and_round_trip() -> None:
    cfg = parse_function_config({"processingGuarantees": "atmost_once", "subscriptionPosition": "earliest"})
    assert cfg.processing_guarantees == "ATMOST_ONCE" and cfg.subscription_position == "Earliest"
    assert parse_function_config(cfg.to_dict()) == cfg


def test_yaml_file_with_flag_overrides(tmp_path: Any) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "tenant: public\nnamespace: default\nname: enrich\nclassName: enrich.Enricher\n"
        "inputs: [persistent://public/default/raw]\noutput: persistent://public/default/enriched\n"
        "parallelism: 3\nuserConfig: {threshold: 5}\nresources: {cpu: 0.5, ram: 536870912}\n"
        "inputSpecs:\n  persistent://public/default/raw: {schemaType: json, receiverQueueSize: 200}\n"
        "producerConfig: {maxPendingMessages: 500, batchBuilder: KEY_BASED}\n"
    )
    cfg = build_function_config(str(path), {"parallelism": 2, "resources": {"disk": 99}})
    s = resolve(cfg)
    assert s.parallelism == 2 and s.user_config == {"threshold": 5}
    assert (s.resources.cpu, s.resources.ram, s.resources.disk) == (0.5, 536870912, 99)
    assert s.producer.batch_builder == "KEY_BASED" and s.inputs[0].receiver_queue_size == 200


def test_bad_config_file(tmp_path: Any) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of FunctionConfig fields"):
        build_function_config(str(path), {})
    with pytest.raises(ConfigError, match="no such file"):
        build_function_config(str(tmp_path / "missing.yaml"), {})


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("t", "persistent://public/default/t"),
        ("a/b/t", "persistent://a/b/t"),
        ("non-persistent://a/b/t", "non-persistent://a/b/t"),
        ("persistent://a/b/t-partition-1", "persistent://a/b/t-partition-1"),
    ],
)
def test_topic_names(name: str, full: str) -> None:
    assert normalize_topic(name) == full


@pytest.mark.parametrize("name", ["", " t", "a/b", "x://a/b/c", "persistent://a/b", "a/b/c/d", "a b"])
def test_bad_topic_names(name: str) -> None:
    with pytest.raises(ValueError):
        normalize_topic(name)
