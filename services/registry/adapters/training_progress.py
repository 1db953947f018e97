"""Training progress points (domain/training_progress.py), one row per `training.progress` event, in a table of
its own beside registry_jobs: progress is telemetry, so it neither bumps a job's version (no optimistic-lock
conflict with an approver's decision) nor records an event.

Bounded: a job keeps at most MAX_POINTS rows; reaching that, every second older row is dropped, so a long run
keeps its whole curve at half the resolution rather than only its tail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.registry.adapters.tables import Base, UTCDateTime
from services.registry.domain.training_progress import ProgressPoint

MAX_POINTS = 2000


class TrainingProgressRow(Base):
    __tablename__ = "registry_training_progress"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(80), index=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    step: Mapped[int] = mapped_column(Integer)
    total_steps: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


def add_point(session: Session, job_id: str, event_id: str, point: ProgressPoint) -> bool:
    """Keep one point; False when this event is already kept (a redelivery)."""
    if session.scalar(select(TrainingProgressRow.id).where(TrainingProgressRow.event_id == event_id)) is not None:
        return False
    count = session.scalar(select(func.count()).where(TrainingProgressRow.job_id == job_id)) or 0
    if count >= MAX_POINTS:
        ids = session.scalars(
            select(TrainingProgressRow.id).where(TrainingProgressRow.job_id == job_id).order_by(TrainingProgressRow.id)
        ).all()
        session.execute(delete(TrainingProgressRow).where(TrainingProgressRow.id.in_(ids[1:-1:2])))
    session.add(TrainingProgressRow(
        job_id=job_id, event_id=event_id, step=point.step, total_steps=point.total_steps, loss=point.loss,
        eta_s=point.eta_s, tokens_per_s=point.tokens_per_s, at=point.at,
    ))
    return True


def points_of(session: Session, job_id: str) -> list[ProgressPoint]:
    """The job's points in the order the trainer logged them, whatever order the bus delivered them in (a
    resumed run's steps go down once, then up again)."""
    rows = session.scalars(
        select(TrainingProgressRow)
        .where(TrainingProgressRow.job_id == job_id)
        .order_by(TrainingProgressRow.at, TrainingProgressRow.id)
    )
    return [ProgressPoint(step=r.step, total_steps=r.total_steps, loss=r.loss, at=r.at, eta_s=r.eta_s,
                          tokens_per_s=r.tokens_per_s) for r in rows]
