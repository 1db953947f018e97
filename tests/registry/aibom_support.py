"""AIBOM facts for the tests: one version per training method, with what the scanner, trainer and evaluator
would have reported, and the model.registered payload that announces its AIBOM."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

from services.registry.aibom.facts import AIBOMFacts
from shared.events.decommissioning import DecommissioningPlan
from shared.events.envelope import Envelope
from shared.events.model_versions import ModelRegistered
from shared.events.payloads import ArtifactRef


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


BIAS_SUITE = {
    "name": "bias",
    "metrics": {
        "output_divergence_gender": 0.31,
        "answer_change_rate_gender": 0.125,
        "loglik_gap_gender": 0.02,
        "output_divergence_age": 0.05,
        "answer_change_rate_age": 0.0,
        "loglik_gap_age": 0.01,
        "max_output_divergence": 0.31,
    },
    "base_metrics": {"output_divergence_gender": 0.12, "output_divergence_age": 0.04, "max_output_divergence": 0.12},
}
TASK_SUITE = {
    "name": "task_quality",
    "metrics": {"heldout_loss": 0.26, "exact_match": 0.31, "schema_valid_rate": None},
    "base_metrics": {"heldout_loss": 1.68, "exact_match": 0.0},
}


def facts_dict(
    kind: str = "sft", adapter: str = "lora", dp: bool = False, version_id: str = "support-bot.v1"
) -> dict[str, Any]:
    """The facts of one version as plain data (what the registry gathers), varied by training method."""
    artefact = digest(f"artefact {version_id} {kind} {adapter} {dp}")
    return {
        "version_id": version_id,
        "model_name": "support-bot",
        "version": 1,
        "job_id": "job_0001",
        "registered_at": datetime(2026, 11, 30, 12, 0, 5, 250000, tzinfo=UTC),
        "base_model": "tiny",
        "base_model_sha256": digest("tiny weights"),
        "base_licence": "Apache-2.0",
        "licence_decision": "allowed: Apache-2.0 is on the allowlist",
        "base_architecture": {"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
        "method_kind": kind,
        "adapter": adapter,
        "differential_privacy": dp,
        "hyperparameters": {"learning_rate": 0.0002, "epochs": 1, "lora_r": 8 if adapter == "lora" else None},
        "seed": 7,
        "epsilon": 7.93 if dp else None,
        "delta": 1e-05 if dp else None,
        "artifact_uri": f"cas://sha256/{artefact}",
        "artifact_sha256": artefact,
        "artifact_size_bytes": 123456,
        "datasets": [
            {
                "role": "training",
                "uri": f"cas://sha256/{digest('redacted tickets')}",
                "sha256": digest("redacted tickets"),
                "fingerprint": digest("fingerprint"),
                "record_count": 48,
                "classification": "confidential",
                "legal_basis": "contract",
                "scan_verdict": "redacted",
                "entity_totals": {"EMAIL_ADDRESS": {"redact": 12}, "PHONE_NUMBER": {"redact": 3}},
                "ner": True,
                "ner_model": "en_core_web_sm",
                "ner_model_version": "3.8.0",
                "scan_report_sha256": digest("scan report"),
            },
            {
                "role": "held_out",
                "uri": f"cas://sha256/{digest('held out')}",
                "sha256": digest("held out"),
                "record_count": 16,
                "classification": "confidential",
                "scan_verdict": "redacted",
                "ner": False,
            },
        ],
        "evaluation": {
            "evaluation_id": f"ev_{artefact[:12]}",
            "policy": "default",
            "risk_tier": "high",
            "passed": False,
            "complete": True,
            "failures": [
                {
                    "metric": "bias.output_divergence_gender",
                    "rule": "max",
                    "value": 0.31,
                    "threshold": 0.25,
                    "base": 0.12,
                },
            ],
            "suites": [TASK_SUITE, BIAS_SUITE],
            "report_uri": f"cas://sha256/{digest('report')}",
            "report_sha256": digest("report"),
        },
        "use_case": {
            "name": "support replies",
            "description": "Draft replies to customer support tickets",
            "problem": "agents spend hours on repetitive replies",
            "risks": "replies could reveal another customer's data",
            "domain": "general",
            "knowledge_changes": "monthly",
        },
        "risk_tier": "high",
        "requester": "alice",
        "job_approvers": ["bob", "carol"],
        "library_versions": {"torch": "2.13.0", "transformers": "5.0.0", "peft": "0.17.0"},
        "code_commit": "cd403cc",
        "decommissioning": {
            "owner": "ml-platform",
            "retraining_trigger": "held-out exact match below 0.25 or a new data classification",
            "previous_version_retirement": "retired 30 days after this version is deployed",
            "audit_retention_days": 3650,
            "review_by": date(2027, 5, 30),
        },
    }


def facts(**options: Any) -> AIBOMFacts:
    return AIBOMFacts.model_validate(facts_dict(**options))


def registered_payload(version_id: str, aibom_sha256: str, artefact_sha256: str) -> dict[str, Any]:
    """model.registered as the registry publishes it (validated by the catalog's ModelRegistered)."""
    digest = "ab" * 32
    return ModelRegistered(
        version_id=version_id,
        model_name=version_id.rsplit(".v", 1)[0],
        version=int(version_id.rsplit(".v", 1)[1]),
        job_id="job_0001",
        evaluation_id="ev-1",
        base_model="tiny",
        artifact=ArtifactRef(uri=f"cas://sha256/{artefact_sha256}", sha256=artefact_sha256, size_bytes=123456),
        aibom=ArtifactRef(uri=f"cas://sha256/{aibom_sha256}", sha256=aibom_sha256),
        gate_passed=True,
        report=ArtifactRef(uri=f"cas://sha256/{digest}", sha256=digest),
        risk_tier="limited",
        required_approvals=1,
        decommissioning=DecommissioningPlan(
            owner="support-platform",
            retraining_trigger="accuracy below 95%",
            previous_version_retirement="deprecated for 30 days, then retired",
            audit_retention_days=365,
        ),
        review_by="2027-05-01",
    ).model_dump(mode="json")


def registered_envelope(payload: dict[str, Any]) -> Envelope:
    return Envelope(
        type="model.registered",
        producer="registry",
        actor="system:registry",
        subject=payload["version_id"],
        payload=payload,
    )
