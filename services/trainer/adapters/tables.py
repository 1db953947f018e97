"""The trainer's own record of finished jobs: one row per job, so a final artefact is recorded once even
if the job is delivered again or two workers race to the end."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, select
from sqlalchemy.orm import Session

metadata = MetaData()

trainer_jobs = Table(
    "trainer_jobs",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("outcome", String(20), nullable=False),  # completed | failed | cancelled
    Column("artifact_sha256", String(64)),
    Column("fencing_token", Integer),
    Column("worker_id", String(200)),
    Column("event_id", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
)


def finished_outcome(session: Session, job_id: str) -> str | None:
    return session.execute(select(trainer_jobs.c.outcome).where(trainer_jobs.c.job_id == job_id)).scalar()


def record_outcome(session: Session, *, job_id: str, outcome: str, event_id: str, detail: dict[str, object],
                   artifact_sha256: str | None = None, fencing_token: int | None = None,
                   worker_id: str | None = None) -> None:
    """Insert the job's final outcome; a second insert for the same job violates the primary key."""
    session.execute(trainer_jobs.insert().values(
        job_id=job_id, outcome=outcome, artifact_sha256=artifact_sha256, fencing_token=fencing_token,
        worker_id=worker_id, event_id=event_id, detail=detail, finished_at=datetime.now(UTC),
    ))
