"""The AIBOM: CycloneDX 1.6 documents that the official schema accepts for every training method, carrying
every element a reviewer needs, in bytes that do not change when the facts do not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from services.registry.aibom.build import build_aibom
from services.registry.aibom.canonical import aibom_bytes, aibom_sha256
from services.registry.aibom.facts import AIBOMFacts
from services.registry.aibom.schema import spdx_license_ids, validate_aibom
from tests.registry.aibom_support import facts, facts_dict

METHODS = {
    "lora-sft": {"kind": "sft", "adapter": "lora"},
    "full-sft": {"kind": "sft", "adapter": "full"},
    "dpo": {"kind": "dpo", "adapter": "lora"},
    "dp-lora-sft": {"kind": "sft", "adapter": "lora", "dp": True},
    "cpt": {"kind": "cpt", "adapter": "full"},
}


def properties(component: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in component.get("properties", [])}


@pytest.mark.parametrize("method", list(METHODS))
def test_the_official_schema_accepts_every_method(method: str) -> None:
    doc = build_aibom(facts(**METHODS[method]), tool_version="0.1.0")
    assert validate_aibom(doc) == []
    # What is validated is what is published: the canonical bytes parse back to the same document.
    assert validate_aibom(json.loads(aibom_bytes(doc))) == []


@pytest.mark.parametrize(
    ("method", "approach"),
    [("lora-sft", "supervised"), ("full-sft", "supervised"), ("dpo", "supervised"), ("cpt", "self-supervised")],
)
def test_learning_approach_follows_the_method(method: str, approach: str) -> None:
    model = build_aibom(facts(**METHODS[method]))["metadata"]["component"]
    assert model["modelCard"]["modelParameters"]["approach"] == {"type": approach}
    assert properties(model)["tunegate:method.kind"] == METHODS[method]["kind"]
    assert properties(model)["tunegate:method.adapter"] == METHODS[method]["adapter"]


def test_differential_privacy_budget_is_recorded_only_when_trained_with_it() -> None:
    private = properties(build_aibom(facts(dp=True))["metadata"]["component"])
    assert private["tunegate:method.differential_privacy"] == "true"
    assert (private["tunegate:dp.epsilon"], private["tunegate:dp.delta"]) == ("7.93", "1e-05")
    card = build_aibom(facts(dp=True))["metadata"]["component"]["modelCard"]["considerations"]
    assert any("epsilon 7.93, delta 1e-05" in risk["mitigationStrategy"] for risk in card["ethicalConsiderations"])
    plain = properties(build_aibom(facts())["metadata"]["component"])
    assert plain["tunegate:method.differential_privacy"] == "false"
    assert "tunegate:dp.epsilon" not in plain and "tunegate:dp.delta" not in plain


def test_every_required_element_is_present() -> None:
    given = facts()
    doc = build_aibom(given, tool_version="9.9.9")
    assert (doc["bomFormat"], doc["specVersion"], doc["version"]) == ("CycloneDX", "1.6", 1)
    assert doc["metadata"]["timestamp"] == "2026-11-30T12:00:05.250000Z"
    assert doc["metadata"]["tools"]["components"] == [{"type": "application", "name": "tunegate", "version": "9.9.9"}]
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "support-bot" and model["version"] == "1"
    # The trained adapter's hash, and where it is.
    assert model["hashes"] == [{"alg": "SHA-256", "content": given.artifact_sha256}]
    distribution = next(ref for ref in model["externalReferences"] if ref["type"] == "distribution")
    assert distribution["url"] == given.artifact_uri
    # The evaluation report's hash, as a reference and as a property.
    report = next(ref for ref in model["externalReferences"] if ref["type"] == "quality-metrics")
    assert report["hashes"] == [{"alg": "SHA-256", "content": given.evaluation.report_sha256}]
    props = properties(model)
    assert props["tunegate:evaluation.report.sha256"] == given.evaluation.report_sha256
    assert props["tunegate:risk_tier"] == "high" and props["tunegate:seed"] == "7"
    assert props["tunegate:hyperparameter.learning_rate"] == "0.0002"
    assert props["tunegate:hyperparameter.lora_r"] == "8"
    assert props["tunegate:library.torch"] == "2.13.0" and props["tunegate:code_commit"] == "cd403cc"
    assert props["tunegate:decommissioning.owner"] == "ml-platform"
    assert props["tunegate:decommissioning.review_by"] == "2027-05-30"
    assert props["tunegate:decommissioning.audit_retention_days"] == "3650"
    assert json.loads(props["tunegate:evaluation.failures"])[0]["metric"] == "bias.output_divergence_gender"

    card = model["modelCard"]
    parameters = card["modelParameters"]
    assert parameters["task"] == "text-generation"
    assert parameters["architectureFamily"] == "transformer (decoder-only)"
    assert parameters["modelArchitecture"] == "LlamaForCausalLM"
    assert parameters["inputs"] == [{"format": "text"}] and parameters["outputs"] == [{"format": "text"}]
    metrics = card["quantitativeAnalysis"]["performanceMetrics"]
    expected = sum(len(s.metrics) + len(s.base_metrics) for s in given.evaluation.suites)
    assert len(metrics) == expected
    assert {"type": "task_quality.heldout_loss", "value": "0.26", "slice": "fine-tuned"} in metrics
    assert {"type": "task_quality.heldout_loss", "value": "1.68", "slice": "base"} in metrics
    assert {"type": "task_quality.schema_valid_rate", "value": "not measured", "slice": "fine-tuned"} in metrics
    considerations = card["considerations"]
    assert considerations["useCases"][0] == "support replies: Draft replies to customer support tickets"
    limitations = " | ".join(considerations["technicalLimitations"])
    assert "bias.output_divergence_gender = 0.31 fails max 0.25, base 0.12" in limitations
    assert "LoRA adapter" in limitations and "changes monthly" in limitations
    risks = {risk["name"]: risk["mitigationStrategy"] for risk in considerations["ethicalConsiderations"]}
    assert "approved by bob, carol" in risks["replies could reveal another customer's data"]
    fairness = {item["groupAtRisk"]: item for item in considerations["fairnessAssessments"]}
    assert set(fairness) == {"people distinguished by age", "people distinguished by gender"}
    assert "flagged bias.output_divergence_gender" in fairness["people distinguished by gender"]["mitigationStrategy"]
    assert "within the release gate" in fairness["people distinguished by age"]["mitigationStrategy"]
    assert "output divergence 0.31 (base 0.12)" in fairness["people distinguished by gender"]["harms"]

    base, training, held_out = doc["components"]
    assert base["type"] == "machine-learning-model" and base["name"] == "tiny"
    assert base["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert base["hashes"] == [{"alg": "SHA-256", "content": given.base_model_sha256}]
    assert properties(base)["tunegate:licence.decision"] == given.licence_decision

    for component, dataset in ((training, given.datasets[0]), (held_out, given.datasets[1])):
        assert component["type"] == "data"
        assert component["hashes"] == [{"alg": "SHA-256", "content": dataset.sha256}]
        data = component["data"][0]
        assert data["type"] == "dataset" and data["contents"] == {"url": dataset.uri}
        assert data["classification"] == "confidential"
        assert data["governance"]["owners"] == [{"contact": {"name": "alice"}}]
    assert properties(training)["tunegate:scan.ner"] == "true"
    assert properties(held_out)["tunegate:scan.ner"] == "false"
    assert properties(training)["tunegate:scan.ner.model"] == "en_core_web_sm"
    assert properties(training)["tunegate:dataset.fingerprint"] == given.datasets[0].fingerprint
    assert properties(training)["tunegate:dataset.legal_basis"] == "contract"
    assert training["data"][0]["sensitiveData"] == ["EMAIL_ADDRESS: redact 12", "PHONE_NUMBER: redact 3"]
    assert "sensitiveData" not in held_out["data"][0]

    # The model card names the data components it was trained on, and the dependency graph agrees.
    refs = [item["ref"] for item in parameters["datasets"]]
    assert refs == [training["bom-ref"], held_out["bom-ref"]]
    graph = {item["ref"]: item["dependsOn"] for item in doc["dependencies"]}
    assert graph[model["bom-ref"]] == [base["bom-ref"], *refs]


@pytest.mark.parametrize(
    ("licence", "expected"),
    [
        ("MIT", {"id": "MIT"}),
        ("LicenseRef-acme-internal", {"name": "LicenseRef-acme-internal"}),
        (None, {"name": "not declared"}),
    ],
)
def test_base_licence_is_an_spdx_id_only_when_it_is_one(licence: str | None, expected: dict[str, str]) -> None:
    data = facts_dict()
    data["base_licence"] = licence
    doc = build_aibom(AIBOMFacts.model_validate(data))
    assert doc["components"][0]["licenses"] == [{"license": expected}]
    assert validate_aibom(doc) == []


def test_the_bytes_are_deterministic() -> None:
    first = aibom_bytes(build_aibom(facts(), tool_version="0.1.0"))
    second = aibom_bytes(build_aibom(AIBOMFacts.model_validate(facts_dict()), tool_version="0.1.0"))
    assert first == second
    assert first.endswith(b"}\n") and first.count(b"\n") == 1
    assert list(json.loads(first)) == sorted(json.loads(first))  # keys sorted at every level, top shown here
    assert first.decode("utf-8")
    # One fact changed: another document, another serial number when the artefact differs.
    other = facts_dict()
    other["evaluation"]["report_sha256"] = "0" * 64
    assert aibom_sha256(build_aibom(AIBOMFacts.model_validate(other), tool_version="0.1.0")) != aibom_sha256(
        json.loads(first)
    )
    assert build_aibom(facts())["serialNumber"] == build_aibom(facts())["serialNumber"]
    assert build_aibom(facts())["serialNumber"] != build_aibom(facts(dp=True))["serialNumber"]


def test_a_broken_document_is_refused_naming_the_path() -> None:
    doc = build_aibom(facts())
    broken = copy.deepcopy(doc)
    broken["metadata"]["component"]["hashes"][0]["alg"] = "SHA256"
    assert validate_aibom(broken) == [
        "$.metadata.component.hashes[0].alg: 'SHA256' is not one of ['MD5', 'SHA-1', 'SHA-256', 'SHA-384', "
        "'SHA-512', 'SHA3-256', 'SHA3-384', 'SHA3-512', 'BLAKE2b-256', 'BLAKE2b-384', 'BLAKE2b-512', 'BLAKE3']"
    ]
    broken = copy.deepcopy(doc)
    broken["components"][0]["licenses"][0]["license"]["id"] = "Apache-2"
    assert validate_aibom(broken) == [
        f"$.components[0].licenses[0].license.id: 'Apache-2' is not one of the {len(spdx_license_ids())} values"
        " the schema allows"
    ]
    broken = copy.deepcopy(doc)
    del broken["components"][1]["name"]
    broken["metadata"]["component"]["modelCard"]["modelParameters"]["approach"]["type"] = "preference"
    broken["metadata"]["timestamp"] = "yesterday"
    problems = validate_aibom(broken)
    assert "$.components[1]: 'name' is a required property" in problems
    assert any(
        p.startswith("$.metadata.component.modelCard.modelParameters.approach.type: 'preference'") for p in problems
    )
    assert "$.metadata.timestamp: 'yesterday' is not a 'date-time'" in problems
    assert validate_aibom({**doc, "specVersion": "1.5"}) == ["$.specVersion: '1.5' is not '1.6'"]
    assert validate_aibom([doc]) == ["$: an AIBOM is a JSON object, not list"]


def test_facts_are_checked_before_anything_is_built() -> None:
    data = facts_dict()
    data["registered_at"] = data["registered_at"].replace(tzinfo=None)
    with pytest.raises(ValidationError, match="registered_at"):
        AIBOMFacts.model_validate(data)
    data = facts_dict()
    data["datasets"][0]["sha256"] = "not-a-digest"
    with pytest.raises(ValidationError, match=r"datasets\.0\.sha256"):
        AIBOMFacts.model_validate(data)
    data = facts_dict()
    data["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        AIBOMFacts.model_validate(data)


@pytest.mark.parametrize("method", list(METHODS))
def test_cyclonedx_python_lib_own_validator_agrees(method: str) -> None:
    """A second opinion from the library that ships the schema, through its own loader and references."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    validator = JsonStrictValidator(SchemaVersion.V1_6)
    doc = build_aibom(facts(**METHODS[method]))
    assert validator.validate_str(aibom_bytes(doc).decode("utf-8")) is None
    doc["metadata"]["component"]["modelCard"]["modelParameters"]["approach"]["type"] = "preference-optimisation"
    assert validator.validate_str(json.dumps(doc)) is not None


def test_a_gate_failure_over_every_attribute_concerns_each_of_them() -> None:
    data = facts_dict()
    data["evaluation"]["failures"] = [
        {"metric": "bias.max_output_divergence", "rule": "max", "value": 0.31, "threshold": 0.25, "base": 0.12}
    ]
    card = build_aibom(AIBOMFacts.model_validate(data))["metadata"]["component"]["modelCard"]["considerations"]
    for item in card["fairnessAssessments"]:
        assert item["mitigationStrategy"] == (
            "release gate default flagged bias.max_output_divergence (over every attribute)"
        )


def test_optional_considerations_appear_only_when_known() -> None:
    data = facts_dict()
    data["evaluation"]["suites"] = [data["evaluation"]["suites"][0]]  # no bias suite ran
    data["evaluation"]["failures"] = []
    data["use_case"]["users"] = ["support agents"]
    data["environment"] = {"device": "cpu", "training_seconds": "41.5"}
    doc = build_aibom(AIBOMFacts.model_validate(data))
    considerations = doc["metadata"]["component"]["modelCard"]["considerations"]
    assert "fairnessAssessments" not in considerations
    assert considerations["users"] == ["support agents"]
    assert considerations["environmentalConsiderations"] == {
        "properties": [
            {"name": "tunegate:environment.device", "value": "cpu"},
            {"name": "tunegate:environment.training_seconds", "value": "41.5"},
        ]
    }
    assert validate_aibom(doc) == []
    plain = build_aibom(facts())["metadata"]["component"]["modelCard"]["considerations"]
    assert "users" not in plain and "environmentalConsiderations" not in plain
