"""The incident API's bodies (POST/GET /incidents...), built from the Incident aggregate here, at the edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from services.registry.domain.incidents import (
    MAX_AUDIT_ENTRIES,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_VERSIONS,
    Incident,
)
from services.registry.schemas import _AttributeView, _Model
from shared.events.incidents import Severity

VersionRef = Annotated[str, Field(min_length=1, max_length=80)]
EventRef = Annotated[str, Field(min_length=1, max_length=64)]


class IncidentOpen(_Model):
    """Body of POST /incidents."""

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    severity: Severity
    affected_versions: list[VersionRef] = Field(min_length=1, max_length=MAX_VERSIONS)
    description: str = Field(default="", max_length=MAX_TEXT_CHARS)
    audit_entries: list[EventRef] = Field(default_factory=list, max_length=MAX_AUDIT_ENTRIES)
    aware_at: datetime | None = Field(default=None, description="When the provider became aware (default: now).")


class IncidentUpdate(_Model):
    """Body of POST /incidents/{id}/updates: a note, and what changed."""

    note: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    severity: Severity | None = None
    add_versions: list[VersionRef] = Field(default_factory=list, max_length=MAX_VERSIONS)
    add_audit_entries: list[EventRef] = Field(default_factory=list, max_length=MAX_AUDIT_ENTRIES)
    reported_reference: str | None = Field(
        default=None, max_length=200, description="The Art. 73 report was made: the authority's reference."
    )


class IncidentClose(_Model):
    """Body of POST /incidents/{id}/close."""

    resolution: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class IncidentStepView(_AttributeView):
    action: str
    by: str
    at: datetime
    note: str
    event_id: str


class IncidentView(_Model):
    id: str
    title: str
    description: str
    severity: str
    article: str
    status: str
    affected_versions: list[str]
    audit_entries: list[str]
    aware_at: datetime
    report_deadline: datetime | None
    reported_at: datetime | None
    report_reference: str
    overdue: bool
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    resolution: str
    history: list[IncidentStepView]

    @classmethod
    def of(cls, incident: Incident, now: datetime) -> IncidentView:
        return cls(
            id=incident.id, title=incident.title, description=incident.description, severity=incident.severity,
            article=incident.article, status=incident.status, affected_versions=list(incident.affected_versions),
            audit_entries=list(incident.audit_entries), aware_at=incident.aware_at, report_deadline=incident.deadline,
            reported_at=incident.reported_at, report_reference=incident.report_reference,
            overdue=incident.overdue(now), opened_by=incident.opened_by, opened_at=incident.opened_at,
            updated_at=incident.updated_at, closed_at=incident.closed_at, resolution=incident.resolution,
            history=[IncidentStepView.of(step) for step in incident.history],
        )
