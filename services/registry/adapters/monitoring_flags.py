"""Monitoring flags of model versions (domain/monitoring.py): one row per report, kept for good. A table of its
own next to registry_model_versions, so adding it changes no existing table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.registry.adapters.tables import Base, UTCDateTime
from services.registry.domain.monitoring import Flag


class ModelFlagRow(Base):
    __tablename__ = "registry_model_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(String(80), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    evaluation_id: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


def add_flag(session: Session, flag: Flag) -> None:
    session.add(ModelFlagRow(version_id=flag.version_id, kind=flag.kind, source=flag.source,
                             findings=flag.findings, event_id=flag.event_id, evaluation_id=flag.evaluation_id,
                             action=flag.action, at=flag.at))


def flags_of(session: Session, version_id: str) -> list[Flag]:
    rows = session.scalars(select(ModelFlagRow).where(ModelFlagRow.version_id == version_id)
                           .order_by(ModelFlagRow.id))
    return [Flag(version_id=r.version_id, kind=r.kind, source=r.source, findings=list(r.findings),  # type: ignore[arg-type]
                 event_id=r.event_id, evaluation_id=r.evaluation_id, action=r.action, at=r.at)  # type: ignore[arg-type]
            for r in rows]


def flag_counts(session: Session, version_ids: list[str]) -> dict[str, int]:
    """How many monitoring reports each of these versions has (absent: none)."""
    if not version_ids:
        return {}
    rows = session.execute(select(ModelFlagRow.version_id, func.count()).where(
        ModelFlagRow.version_id.in_(version_ids)).group_by(ModelFlagRow.version_id))
    return {version_id: count for version_id, count in rows}
