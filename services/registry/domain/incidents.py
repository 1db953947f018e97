"""The Incident aggregate: a serious incident involving model versions, tracked against the provider's duty to
report it to the market surveillance authority (EU AI Act Art. 73).

The reporting deadline runs from the moment the provider became aware of the incident (`aware_at`) and
depends on its severity; `REPORTING_RULES` is the one home of that table. An incident is open until closed;
every change (opened, updated, reported, closed) is a step of its history and an event, recorded together
(the caller commits both in one unit of work). People manage incidents through the API (approvers and
admins); the registry itself may open one (`open_incident`, e.g. from a monitoring event)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.registry.domain import events
from services.registry.domain.errors import Conflict, InvalidRequest
from services.registry.domain.events import EventRecorder
from shared.ids import UnsafeIdError, uuid7, validate_safe_name, validate_version_id


@dataclass(frozen=True)
class ReportingRule:
    days: int | None
    """Days from awareness to the report; None: not a serious incident, no Art. 73 report is due."""
    article: str
    meaning: str


REPORTING_RULES: dict[str, ReportingRule] = {
    "widespread_or_critical_infrastructure": ReportingRule(
        2, "EU AI Act Art. 73(3)",
        "a widespread infringement, or a serious and irreversible disruption of critical infrastructure "
        "(Art. 3(49)(b))",
    ),
    "death": ReportingRule(10, "EU AI Act Art. 73(4)", "the death of a person"),
    "serious": ReportingRule(
        15, "EU AI Act Art. 73(2)",
        "any other serious incident (Art. 3(49)): serious harm to health, to property or the environment, or an "
        "infringement of fundamental-rights obligations",
    ),
    "other": ReportingRule(
        None, "EU AI Act Art. 3(49)", "not a serious incident: tracked internally, no Art. 73 report is due"
    ),
}
SEVERITIES: tuple[str, ...] = tuple(REPORTING_RULES)
STATUSES = ("open", "closed")

MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 8_000
MAX_VERSIONS = 50
MAX_AUDIT_ENTRIES = 200
_EVENT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def new_incident_id() -> str:
    return f"inc_{uuid7().replace('-', '')}"


def validate_incident_id(value: str) -> str:
    """An incident id names files of evidence packs: the safe-name rule, and the `inc_` prefix it is made with."""
    validate_safe_name(value, "incident id")
    if not value.startswith("inc_"):
        raise UnsafeIdError(f"incident id {value!r} is not allowed: incident ids start with 'inc_'")
    return value


def rule_for(severity: str) -> ReportingRule:
    try:
        return REPORTING_RULES[severity]
    except KeyError:
        raise InvalidRequest(f"severity: unknown severity {severity!r} (known: {', '.join(SEVERITIES)})") from None


def report_deadline(severity: str, aware_at: datetime) -> datetime | None:
    """When the Art. 73 report is due, counted from awareness; None when no report is due."""
    days = rule_for(severity).days
    return None if days is None else aware_at + timedelta(days=days)


def _text(value: str, what: str, limit: int, *, required: bool) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidRequest(f"{what}: must not be empty")
    if len(text) > limit:
        raise InvalidRequest(f"{what}: at most {limit} characters")
    return text


def _versions(values: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    if len(cleaned) > MAX_VERSIONS:
        raise InvalidRequest(f"affected_versions: at most {MAX_VERSIONS}")
    for value in cleaned:
        try:
            validate_version_id(value)
        except ValueError as exc:
            raise InvalidRequest(f"affected_versions: {exc}") from None
    return cleaned


def _audit_entries(values: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    if len(cleaned) > MAX_AUDIT_ENTRIES:
        raise InvalidRequest(f"audit_entries: at most {MAX_AUDIT_ENTRIES}")
    bad = [v for v in cleaned if not _EVENT_ID.fullmatch(v)]
    if bad:
        raise InvalidRequest(f"audit_entries: {bad[0][:80]!r} is not an event id (a UUID, as `tunegate audit tail` "
                             "shows them)")
    return cleaned


def _check_known(versions: list[str], known: set[str] | frozenset[str]) -> None:
    unknown = [v for v in versions if v not in known]
    if unknown:
        raise InvalidRequest(f"affected_versions: no such model version: {', '.join(unknown)}")


@dataclass(frozen=True)
class IncidentStep:
    """One change of an incident: who, when, what (`action`: opened, updated, reported, closed) and its event."""

    action: str
    by: str
    at: datetime
    note: str
    event_id: str


@dataclass(kw_only=True, eq=False)
class Incident(EventRecorder):
    id: str
    title: str
    description: str
    severity: str
    status: str
    affected_versions: list[str]
    audit_entries: list[str]
    aware_at: datetime
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    reported_at: datetime | None = None
    report_reference: str = ""
    closed_at: datetime | None = None
    resolution: str = ""
    history: list[IncidentStep] = field(default_factory=list)
    version: int = 0

    @property
    def deadline(self) -> datetime | None:
        return report_deadline(self.severity, self.aware_at)

    @property
    def article(self) -> str:
        return rule_for(self.severity).article

    def overdue(self, now: datetime) -> bool:
        """A report is due, was not made, and its deadline has passed (closing does not discharge the duty)."""
        due = self.deadline
        return due is not None and self.reported_at is None and now > due

    def _step(self, action: str, by: str, now: datetime, note: str, event: events.DomainEvent) -> None:
        self.history.append(IncidentStep(action, by, now, note, event.event_id))
        self.updated_at = now
        self._record(event)

    def update(
        self,
        *,
        by: str,
        now: datetime,
        note: str,
        severity: str | None = None,
        add_versions: list[str] | None = None,
        known_versions: set[str] | frozenset[str] = frozenset(),
        add_audit_entries: list[str] | None = None,
        reported_reference: str | None = None,
    ) -> None:
        """Record what was learnt: a note, a changed severity (the deadline moves with it), more affected
        versions (each in `known_versions`, the ones the registry holds) or audit entries, or that the Art. 73
        report was made (with the authority's reference)."""
        if self.status == "closed":
            raise Conflict(f"incident {self.id} is closed; open a new incident for what happened since")
        text = _text(note, "note", MAX_TEXT_CHARS, required=True)
        if severity is not None:
            rule_for(severity)
        versions = [v for v in _versions(add_versions or []) if v not in self.affected_versions]
        _check_known(versions, known_versions)
        entries = [e for e in _audit_entries(add_audit_entries or []) if e not in self.audit_entries]
        reference = None if reported_reference is None else _text(reported_reference, "report_reference", 200,
                                                                   required=True)
        if reference is not None and self.reported_at is not None:
            raise Conflict(f"incident {self.id} was already reported on {self.reported_at:%Y-%m-%d} "
                           f"({self.report_reference})")
        if reference is not None and self.deadline is None:
            raise Conflict(f"incident {self.id} is of severity 'other': no Art. 73 report is due to record")
        if len(self.affected_versions) + len(versions) > MAX_VERSIONS:
            raise InvalidRequest(f"affected_versions: at most {MAX_VERSIONS}")
        if len(self.audit_entries) + len(entries) > MAX_AUDIT_ENTRIES:
            raise InvalidRequest(f"audit_entries: at most {MAX_AUDIT_ENTRIES}")
        self.severity = severity or self.severity
        self.affected_versions += versions
        self.audit_entries += entries
        if reference is not None:
            self.reported_at, self.report_reference = now, reference
        deadline = self.deadline
        self._step(
            "reported" if reference is not None else "updated", by, now, text,
            events.IncidentUpdated(
                subject=self.id, actor=by, note=text, severity=self.severity, added_versions=versions,
                added_audit_entries=entries, report_deadline=deadline, reported_at=self.reported_at,
                report_reference=self.report_reference,
            ),
        )

    def close(self, *, by: str, now: datetime, resolution: str) -> None:
        if self.status == "closed":
            raise Conflict(f"incident {self.id} is already closed")
        text = _text(resolution, "resolution", MAX_TEXT_CHARS, required=True)
        self.status, self.closed_at, self.resolution = "closed", now, text
        self._step("closed", by, now, text, events.IncidentClosed(
            subject=self.id, actor=by, resolution=text, reported_at=self.reported_at,
        ))


def open_incident(
    *,
    title: str,
    severity: str,
    affected_versions: list[str],
    known_versions: set[str] | frozenset[str],
    by: str,
    now: datetime,
    description: str = "",
    audit_entries: list[str] | None = None,
    aware_at: datetime | None = None,
    incident_id: str | None = None,
) -> Incident:
    """A new open incident. `known_versions`: which of `affected_versions` the registry holds (each must);
    `aware_at`: when the provider became aware (default now; never in the future), the deadline counts from
    it. Callable by the API and by the registry's own handlers (e.g. on a drift event, with `by="registry"`)."""
    rule_for(severity)
    versions = _versions(affected_versions)
    if not versions:
        raise InvalidRequest("affected_versions: name at least one model version the incident involves")
    _check_known(versions, known_versions)
    aware = aware_at or now
    if aware.tzinfo is None:
        raise InvalidRequest("aware_at: give a time zone (e.g. 2026-03-01T09:00:00Z)")
    try:
        aware = aware.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in the year 0 in UTC
        raise InvalidRequest("aware_at: outside the years 1 to 9999 once in UTC") from None
    if aware > now:
        raise InvalidRequest("aware_at: the provider cannot have become aware of an incident in the future")
    try:
        ident = validate_incident_id(incident_id or new_incident_id())
    except UnsafeIdError as exc:
        raise InvalidRequest(f"id: {exc}") from None
    incident = Incident(
        id=ident,
        title=_text(title, "title", MAX_TITLE_CHARS, required=True),
        description=_text(description, "description", MAX_TEXT_CHARS, required=False),
        severity=severity,
        status="open",
        affected_versions=versions,
        audit_entries=_audit_entries(audit_entries or []),
        aware_at=aware,
        opened_by=by,
        opened_at=now,
        updated_at=now,
    )
    incident._step("opened", by, now, incident.title, events.IncidentOpened(
        subject=incident.id, actor=by, title=incident.title, severity=severity, affected_versions=versions,
        audit_entries=list(incident.audit_entries), aware_at=aware, report_deadline=incident.deadline,
    ))
    return incident
