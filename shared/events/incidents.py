"""Wire types of incidents (EU AI Act Art. 73): the payloads of `incident.opened`, `.updated` and `.closed`
on the tunegate.models stream, emitted by the registry. Times are ISO 8601 strings in UTC; the deadline is
when the report to the market surveillance authority is due (null: no report is due for that severity)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.events.payloads import MAX_NAME_CHARS, MAX_TEXT_CHARS, Payload
from shared.ids import SAFE_NAME_PATTERN, ModelVersionId

IncidentId = Annotated[str, Field(pattern=SAFE_NAME_PATTERN)]
Severity = Literal["widespread_or_critical_infrastructure", "death", "serious", "other"]
EventId = Annotated[str, Field(min_length=1, max_length=64)]


class IncidentOpened(Payload):
    incident_id: IncidentId
    title: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    severity: Severity
    affected_versions: list[ModelVersionId] = Field(min_length=1, max_length=50)
    audit_entries: list[EventId] = Field(default_factory=list, max_length=200)
    aware_at: str
    report_deadline: str | None
    opened_by: str = Field(min_length=1, max_length=200)


class IncidentUpdated(Payload):
    incident_id: IncidentId
    note: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    severity: Severity
    added_versions: list[ModelVersionId] = Field(default_factory=list, max_length=50)
    added_audit_entries: list[EventId] = Field(default_factory=list, max_length=200)
    report_deadline: str | None
    reported_at: str | None = Field(default=None, description="When the Art. 73 report was made, if it was.")
    report_reference: str = Field(default="", max_length=200)
    updated_by: str = Field(min_length=1, max_length=200)


class IncidentClosed(Payload):
    incident_id: IncidentId
    resolution: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    reported_at: str | None
    closed_by: str = Field(min_length=1, max_length=200)
