"""Scanner tables (names prefixed `scanner_`): one row per completed scan, so an erasure request can find
every dataset (fingerprint, subject index) a data subject was in without re-reading the datasets."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData()


class ScanRow(Base):
    __tablename__ = "scanner_scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(200), index=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    verdict: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    source_sha256: Mapped[str] = mapped_column(String(64))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    report_uri: Mapped[str] = mapped_column(Text)
    subject_index_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    record_count: Mapped[int] = mapped_column(Integer)
    # Naive UTC: SQLite drops zones; this column is informational only.
    created_at: Mapped[datetime] = mapped_column(DateTime, default=lambda: datetime.now(UTC).replace(tzinfo=None))


METADATA = Base.metadata
