"""Registering a model version when an evaluation reaches a verdict over every configured suite: the facts
the job gathered on its way (intake, scan, training) and the verdict become the version's AIBOM, stored in
the artefact store; its sha256 goes into `model.registered`, so the audit ledger commits to it.

Called from the `evaluation.completed` handler, in the transaction that records the verdict on the job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.registry.adapters import model_repository
from services.registry.aibom.build import build_aibom
from services.registry.aibom.canonical import aibom_bytes
from services.registry.aibom.facts import (
    AIBOMFacts,
    DatasetFacts,
    DecommissioningFacts,
    EvaluationFacts,
    VersionDependencyFacts,
)
from services.registry.domain.approvals import approvers
from services.registry.domain.job import Job
from services.registry.domain.model_version import ModelVersion, Registration, review_date
from services.registry.domain.reward_models import RlhfVersions, VersionOnRecord
from services.registry.domain.states import SYSTEM_ACTOR
from shared.events.evaluation import EvaluationCompleted
from shared.events.payloads import ArtifactRef
from shared.ids import model_name_from, version_id_of
from shared.storage.artifacts import ArtifactStore


def model_name_of(job: Job) -> str:
    return job.spec.model_name or model_name_from(job.spec.use_case.name)


def _datasets(job: Job) -> list[DatasetFacts]:
    scan = job.scan_summary or {}
    result = job.training_result or {}
    detectors = scan.get("detectors") or {}
    trained_on = result.get("dataset") or job.training_dataset or {}
    classification = str(scan.get("classification") or "internal")
    datasets = [
        DatasetFacts(
            role="training",
            uri=str(trained_on.get("uri", job.spec.dataset.uri)),
            sha256=str(trained_on.get("sha256") or scan.get("source", {}).get("sha256", "")),
            fingerprint=job.data_fingerprint,
            record_count=scan.get("record_count"),
            classification=classification,
            legal_basis=scan.get("legal_basis"),
            scan_verdict=job.scan_verdict,
            entity_totals=dict(scan.get("totals") or {}),
            ner=detectors.get("ner"),
            ner_model=detectors.get("ner_model"),
            ner_model_version=detectors.get("ner_model_version"),
            scan_report_sha256=(scan.get("report") or {}).get("sha256"),
        )
    ]
    held_out = result.get("held_out")
    if held_out:
        datasets.append(
            DatasetFacts(
                role="held_out",
                uri=str(held_out["uri"]),
                sha256=str(held_out["sha256"]),
                fingerprint=None,
                record_count=None,
                classification=classification,
                legal_basis=scan.get("legal_basis"),
                scan_verdict=job.scan_verdict,
                entity_totals={},
                ner=detectors.get("ner"),
                ner_model=detectors.get("ner_model"),
                ner_model_version=detectors.get("ner_model_version"),
                scan_report_sha256=None,
            )
        )
    return datasets


FOOTPRINT_METRICS = ("train_seconds", "steps", "tokens_seen", "records")
"""Training metrics an AIBOM states as the run's footprint (environmentalConsiderations), when reported."""


def _footprint(metrics: dict[str, Any]) -> dict[str, str]:
    known = [name for name in FOOTPRINT_METRICS if isinstance(metrics.get(name), int | float)]
    return {name: f"{float(metrics[name]):.6g}" for name in known}


def _dependency(found: VersionOnRecord | None) -> VersionDependencyFacts | None:
    if found is None:
        return None
    return VersionDependencyFacts(version_id=found.version_id, artifact_sha256=str(found.artifact["sha256"]),
                                  aibom_sha256=found.aibom_sha256)


def aibom_facts(job: Job, data: EvaluationCompleted, *, model_name: str, number: int, now: datetime,
                rlhf: RlhfVersions | None = None) -> AIBOMFacts:
    result: dict[str, Any] = job.training_result or {}
    plan = job.spec.decommissioning
    assert plan is not None  # intake refuses a job without one
    verdict = data.verdict
    return AIBOMFacts(
        version_id=version_id_of(model_name, number),
        model_name=model_name,
        version=number,
        job_id=job.id,
        registered_at=now,
        base_model=job.spec.base_model,
        base_model_sha256=result.get("base_model_sha256"),
        base_licence=job.licence_id,
        licence_decision=job.licence_decision,
        base_architecture=dict(result.get("base_architecture") or {}),
        method_kind=job.spec.method.kind,
        rlhf=job.spec.method.rlhf.model_dump(mode="json") if job.spec.method.rlhf is not None else None,
        reward_model=_dependency(rlhf.reward_model if rlhf else None),
        start_policy=_dependency(rlhf.policy if rlhf else None),
        adapter=job.spec.method.adapter,
        differential_privacy=job.spec.method.differential_privacy,
        hyperparameters=dict(result.get("hyperparameters") or {}),
        seed=int(result.get("seed", 0)),
        epsilon=result.get("epsilon"),
        delta=result.get("delta"),
        artifact_uri=data.artifact.uri,
        artifact_sha256=data.artifact.sha256,
        artifact_size_bytes=data.artifact.size_bytes,
        datasets=_datasets(job),
        evaluation=EvaluationFacts(
            evaluation_id=data.evaluation_id,
            policy=verdict.policy,
            risk_tier=verdict.risk_tier,
            passed=verdict.passed,
            complete=verdict.complete,
            failures=[f.model_dump(mode="json") for f in verdict.failures],
            suites=[s.model_dump(mode="json", include={"name", "metrics", "base_metrics"}) for s in data.suites],
            report_uri=data.report.uri,
            report_sha256=data.report.sha256,
        ),
        use_case=job.spec.use_case.model_dump(mode="json"),
        risk_tier=job.risk_tier,
        requester=job.requester,
        job_approvers=approvers(job.approvals),
        library_versions=dict(result.get("library_versions") or {}),
        code_commit=result.get("code_commit"),
        environment=_footprint(dict(result.get("metrics") or {})),
        decommissioning=DecommissioningFacts(
            owner=plan.owner,
            retraining_trigger=plan.retraining_trigger,
            previous_version_retirement=plan.previous_version_retirement,
            audit_retention_days=plan.audit_retention_days,
            review_by=review_date(now, plan.review_after_days),
        ),
    )


def register_version(
    session: Session, job: Job, data: EvaluationCompleted, *, artifacts: ArtifactStore, now: datetime
) -> ModelVersion | None:
    """The version this evaluation registers, or None: a verdict over some suites only (a partial re-run)
    registers nothing, and a redelivered outcome finds its version already on record."""
    if not data.verdict.complete or job.spec.decommissioning is None:
        return None
    if model_repository.version_for_evaluation(session, data.evaluation_id) is not None:
        return None
    model_name = model_name_of(job)
    number = model_repository.next_number(session, model_name)
    rlhf = model_repository.rlhf_versions(session, job.spec)
    facts = aibom_facts(job, data, model_name=model_name, number=number, now=now, rlhf=rlhf)
    aibom: ArtifactRef = artifacts.put_bytes(aibom_bytes(build_aibom(facts)))
    registration = Registration(
        model_name=model_name,
        number=number,
        job_id=job.id,
        evaluation_id=data.evaluation_id,
        requester=job.requester,
        risk_tier=job.risk_tier,
        required_approvals=job.required_approvals,
        base_model=job.spec.base_model,
        base_model_sha256=facts.base_model_sha256,
        adapter=job.spec.method.adapter,
        artifact=data.artifact.model_dump(mode="json"),
        aibom=aibom.model_dump(mode="json"),
        report=data.report.model_dump(mode="json"),
        verdict=data.verdict.model_dump(mode="json"),
        dataset_fingerprints=[job.data_fingerprint] if job.data_fingerprint else [],
        decommissioning=job.spec.decommissioning.model_dump(mode="json"),
    )
    return ModelVersion.register(registration, actor=SYSTEM_ACTOR, now=now)
