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
