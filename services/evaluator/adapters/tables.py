"""The evaluator's own records: the training results it has seen (a re-run on demand evaluates the
artefact recorded here) and one row per finished evaluation, so a result is recorded and published once
even if the work is delivered again or two workers race to the end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

from shared.events.payloads import TrainingCompleted

metadata = MetaData()

evaluator_trainings = Table(
    "evaluator_trainings",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("artifact_sha256", String(64), nullable=False),
    Column("training", JSON, nullable=False),  # the training.completed payload
    Column("seen_at", DateTime(timezone=True), nullable=False),
)

evaluator_evaluations = Table(
    "evaluator_evaluations",
    metadata,
    Column("evaluation_id", String(80), primary_key=True),
    Column("job_id", String(200), nullable=False, index=True),
    Column("outcome", String(20), nullable=False),  # completed | failed
    Column("passed", Integer),
    Column("fencing_token", Integer),
    Column("worker_id", String(200)),
    Column("event_id", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
)


def remember_training(session: Session, training: TrainingCompleted) -> None:
    """Keep the job's latest training result (a job trains once; a redelivery writes the same row)."""
    row = {"artifact_sha256": training.artifact.sha256, "training": training.model_dump(mode="json"),
           "seen_at": datetime.now(UTC)}
    exists = session.execute(select(evaluator_trainings.c.job_id).where(
        evaluator_trainings.c.job_id == training.job_id)).first()
    if exists:
        session.execute(evaluator_trainings.update().where(evaluator_trainings.c.job_id == training.job_id)
                        .values(**row))
    else:
        session.execute(evaluator_trainings.insert().values(job_id=training.job_id, **row))


def training_of(session: Session, job_id: str) -> TrainingCompleted | None:
    data = session.execute(select(evaluator_trainings.c.training).where(
        evaluator_trainings.c.job_id == job_id)).scalar()
    return None if data is None else TrainingCompleted.model_validate(data)


def finished_outcome(session: Session, evaluation_id: str) -> str | None:
    return session.execute(select(evaluator_evaluations.c.outcome).where(
        evaluator_evaluations.c.evaluation_id == evaluation_id)).scalar()


def record_outcome(session: Session, *, evaluation_id: str, job_id: str, outcome: str, event_id: str,
                   detail: dict[str, Any], passed: bool | None = None, fencing_token: int | None = None,
                   worker_id: str | None = None) -> None:
    """Insert the evaluation's outcome; a second insert for the same evaluation violates the primary key."""
    session.execute(evaluator_evaluations.insert().values(
        evaluation_id=evaluation_id, job_id=job_id, outcome=outcome,
        passed=None if passed is None else int(passed), fencing_token=fencing_token, worker_id=worker_id,
        event_id=event_id, detail=detail, finished_at=datetime.now(UTC),
    ))


def training_by_artifact(session: Session, artifact_sha256: str) -> TrainingCompleted | None:
    """The training that produced this artefact (a deployed version names its artefact, not its job). Jobs with
    the same data, seed and settings produce the same bytes: the first of them (job ids sort by creation) is the
    one, on every database. Without the order LIMIT 1 took whichever row came first: SQLite's first inserted,
    but PostgreSQL's heap order, which remember_training's UPDATE on every re-run changes, so a scheduled run was
    compared with another job's evaluation and published under that job."""
    data = session.execute(select(evaluator_trainings.c.training).where(
        evaluator_trainings.c.artifact_sha256 == artifact_sha256).order_by(evaluator_trainings.c.job_id)
        .limit(1)).scalar()
    return None if data is None else TrainingCompleted.model_validate(data)


def outcome_detail(session: Session, evaluation_id: str) -> dict[str, Any] | None:
    """The recorded payload of a completed evaluation (evaluation.completed), else None."""
    return session.execute(select(evaluator_evaluations.c.detail).where(
        evaluator_evaluations.c.evaluation_id == evaluation_id,
        evaluator_evaluations.c.outcome == "completed")).scalar()


# ------------------------------------------------------------------ recurring monitoring

evaluator_deployments = Table(
    "evaluator_deployments",
    metadata,
    Column("version_id", String(80), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("artifact_sha256", String(64), nullable=False),
    Column("deployed_at", DateTime(timezone=True), nullable=False),
)

evaluator_drift_baselines = Table(
    "evaluator_drift_baselines",
    metadata,
    Column("version_id", String(80), primary_key=True),
    Column("summary", JSON, nullable=False),  # domain/drift.py WindowSummary.as_json()
    Column("established_at", DateTime(timezone=True), nullable=False),
)


def record_deployment(session: Session, *, version_id: str, alias: str, artifact_sha256: str,
                      replaces: str | None) -> None:
    """The alias serves this version now (and no longer the one it replaces)."""
    if replaces:
        session.execute(evaluator_deployments.delete().where(
            evaluator_deployments.c.version_id == replaces, evaluator_deployments.c.alias == alias))
    session.execute(evaluator_deployments.delete().where(
        evaluator_deployments.c.version_id == version_id, evaluator_deployments.c.alias == alias))
    session.execute(evaluator_deployments.insert().values(
        version_id=version_id, alias=alias, artifact_sha256=artifact_sha256, deployed_at=datetime.now(UTC)))


def record_retirement(session: Session, version_id: str) -> None:
    session.execute(evaluator_deployments.delete().where(evaluator_deployments.c.version_id == version_id))
    session.execute(evaluator_drift_baselines.delete().where(evaluator_drift_baselines.c.version_id == version_id))


def deployed_versions(session: Session) -> dict[str, str]:
    """version id -> artefact sha256 of every version some alias serves."""
    rows = session.execute(select(evaluator_deployments.c.version_id, evaluator_deployments.c.artifact_sha256))
    return dict(sorted((row.version_id, row.artifact_sha256) for row in rows))


def is_deployed(session: Session, version_id: str) -> bool:
    return session.execute(select(evaluator_deployments.c.version_id).where(
        evaluator_deployments.c.version_id == version_id).limit(1)).first() is not None


def drift_baseline(session: Session, version_id: str) -> tuple[dict[str, Any], datetime] | None:
    row = session.execute(select(evaluator_drift_baselines.c.summary, evaluator_drift_baselines.c.established_at)
                          .where(evaluator_drift_baselines.c.version_id == version_id)).first()
    return None if row is None else (row.summary, row.established_at)


def keep_drift_baseline(session: Session, version_id: str, summary: dict[str, Any], *, replace: bool = False) -> None:
    """The first full window becomes the baseline; a replica that raced here first keeps its own."""
    if replace:
        session.execute(evaluator_drift_baselines.delete().where(
            evaluator_drift_baselines.c.version_id == version_id))
    if drift_baseline(session, version_id) is None:
        session.execute(evaluator_drift_baselines.insert().values(
            version_id=version_id, summary=summary, established_at=datetime.now(UTC)))
