"""Reading both mesh forms into member specs, and the checks of the pipeline graph."""

from __future__ import annotations

import copy

import pytest

from engine.mesh import MemberKind, MeshError, parse_mesh, plan_mesh
from engine.proto import Function_pb2 as pb
from tests.mesh.documents import function_mesh, pip66


def test_pip66_members_are_functions_with_the_mesh_package() -> None:
    plan = plan_mesh(pip66("ns1"))
    assert plan.spec.fqmn == "public/ns1/exclaim-chain"
    assert [m.name for m in plan.members] == ["first", "second"]
    first = plan.member("first")
    assert first.kind is MemberKind.FUNCTION
    assert first.function is not None and first.function.py == "exclamation.py"
    assert first.function.class_name == "exclamation.ExclamationFunction"
    assert first.details.parallelism == 1
    assert [(e.producer, e.consumer) for e in plan.graph.edges] == [("first", "second")]
    assert plan.graph.internal_topics() == ["persistent://public/ns1/chain-mid"]
    assert plan.warnings == []  # chain-in is declared external


def test_pip66_member_package_and_any_function_config_field() -> None:
    doc = pip66("ns1")
    doc["functionInfos"][1].update(py="other.py", userConfig={"k": "v"}, maxMessageRetries=3)
    plan = plan_mesh(doc)
    second = plan.member("second").function
    assert second is not None
    assert second.py == "other.py" and second.user_config == {"k": "v"} and second.max_message_retries == 3


def test_function_mesh_resource_maps_function_mesh_field_names(tmp_path: object) -> None:
    plan = plan_mesh(function_mesh("ns2", "/tmp/out"))
    assert plan.spec.fqmn == "public/ns2/gen-pipeline" and plan.spec.form == "FunctionMesh"
    kinds = {m.name: m.kind for m in plan.members}
    assert kinds == {"gen": MemberKind.SOURCE, "shout": MemberKind.FUNCTION, "store": MemberKind.SINK}
    shout = plan.member("shout")
    assert shout.function is not None
    assert shout.function.processing_guarantees == "ATLEAST_ONCE"
    assert shout.function.subscription_position == "Earliest"
    assert shout.member.max_replicas == 2
    assert shout.member.kubernetes["pod"] == {"labels": {"team": "data"}}
    assert plan.member("gen").details.componentType == pb.FunctionDetails.SOURCE
    assert plan.member("store").details.componentType == pb.FunctionDetails.SINK
    assert plan.graph.order() == ["gen", "shout", "store"]
    assert plan.warnings == []


def test_an_invalid_member_is_named_with_its_field_and_every_problem_is_listed() -> None:
    doc = pip66("ns1")
    doc["functionInfos"][0]["processingGuarantees"] = "SOMETIMES"
    del doc["functionInfos"][1]["classname"]
    with pytest.raises(MeshError) as err:
        plan_mesh(doc)
    text = str(err.value)
    assert "invalid mesh (2 problems)" in text
    assert "function first: processingGuarantees" in text and "SOMETIMES" in text
    assert "function second: className" in text


def test_a_cycle_is_rejected_naming_its_members() -> None:
    doc = pip66("ns1")
    doc["functionInfos"][1]["output"] = doc["functionInfos"][0]["inputs"][0]
    with pytest.raises(MeshError) as err:
        plan_mesh(doc)
    assert "graph" in str(err.value) and "first -> second -> first" in str(err.value)


def test_a_schema_mismatch_names_both_members() -> None:
    doc = pip66("ns1")
    doc["functionInfos"][0]["outputSchemaType"] = "JSON"
    doc["functionInfos"][1]["customSchemaInputs"] = {doc["functionInfos"][1]["inputs"][0]: "STRING"}
    with pytest.raises(MeshError) as err:
        plan_mesh(doc)
    text = str(err.value)
    assert "function second" in text and "function first" in text and "JSON" in text and "STRING" in text


def test_a_serde_mismatch_is_an_error_and_agreement_is_not() -> None:
    doc = pip66("ns1")
    mid = doc["functionInfos"][1]["inputs"][0]
    doc["functionInfos"][0]["outputSerdeClassName"] = "serdes.A"
    doc["functionInfos"][1]["customSerdeInputs"] = {mid: "serdes.B"}
    with pytest.raises(MeshError, match=r"serdes\.A"):
        plan_mesh(doc)
    doc["functionInfos"][1]["customSerdeInputs"] = {mid: "serdes.A"}
    assert plan_mesh(doc).graph.edges


def test_an_input_nothing_produces_is_a_warning_unless_declared_external() -> None:
    doc = pip66("ns1")
    del doc["externalInputs"]
    plan = plan_mesh(doc)
    assert len(plan.warnings) == 1 and "first reads persistent://public/ns1/chain-in" in plan.warnings[0]


def test_a_topic_written_by_two_members_is_flagged() -> None:
    doc = pip66("ns1")
    third = copy.deepcopy(doc["functionInfos"][0])
    third.update(name="third", inputs=["persistent://public/ns1/other-in"])
    doc["functionInfos"].append(third)
    doc["externalInputs"].append("persistent://public/ns1/other-in")
    plan = plan_mesh(doc)
    assert plan.warnings == ["topic persistent://public/ns1/chain-mid is written by 2 members: first, third"]


def test_pattern_inputs_are_edges() -> None:
    doc = pip66("ns1")
    second = doc["functionInfos"][1]
    del second["inputs"]
    second["topicsPattern"] = "persistent://public/ns1/chain-m.*"
    plan = plan_mesh(doc)
    assert [(e.producer, e.consumer) for e in plan.graph.edges] == [("first", "second")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(apiVersion="compute.functionmesh.io/v9"), "apiVersion"),
        (lambda d: d["metadata"].pop("name"), "metadata.name"),
        (lambda d: d["spec"]["functions"][0].pop("name"), "spec.functions[0].name"),
        (lambda d: d["spec"]["sinks"][0].update(namespace="elsewhere"), "namespace"),
    ],
)
def test_function_mesh_document_errors_name_the_field(change: object, field: str) -> None:
    doc = function_mesh("ns2", "/tmp/out")
    change(doc)  # type: ignore[operator]
    with pytest.raises(MeshError) as err:
        plan_mesh(doc)
    assert field in str(err.value)


def test_duplicate_member_names_and_empty_meshes_are_rejected() -> None:
    doc = pip66("ns1")
    doc["functionInfos"][1]["name"] = "first"
    with pytest.raises(MeshError, match="a name no other member has"):
        parse_mesh(doc)
    with pytest.raises(MeshError, match="at least one function"):
        parse_mesh({"name": "m", "functionInfos": []})
    with pytest.raises(MeshError, match="Magnetar runs Python"):
        parse_mesh({**pip66("ns1"), "jarFile": "x.jar"})


def test_request_identity_must_agree_with_the_document() -> None:
    with pytest.raises(MeshError, match="namespace"):
        parse_mesh(pip66("ns1"), "public", "ns2")
    assert parse_mesh(pip66("ns1"), "public", "ns1").namespace == "ns1"
