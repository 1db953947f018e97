"""`tunegate incidents open|update|close|list|show`: incidents involving model versions (EU AI Act Art. 73),
through the registry API (approvers and admins write; auditors, deployers, approvers and admins read). The
regulator-reporting deadline is computed by the registry from the severity and the time of awareness.
Arguments are checked before any request (exit 2); a refusal by the API exits 1."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, fail
from shared.config import Settings

if TYPE_CHECKING:
    from services.registry.incident_schemas import IncidentView

incidents_app = typer.Typer(
    help="Incidents involving model versions (EU AI Act Art. 73): opened, updated, reported and closed through "
    "the registry API, each change an audited event; the reporting deadline follows from the severity.",
    no_args_is_help=True,
)

IncidentArgument = Annotated[str, typer.Argument(help="Incident id (inc_...).")]
AsOption = Annotated[str | None, typer.Option("--as", help="Principal whose stored token to use.")]
SEVERITY_HELP = ("widespread_or_critical_infrastructure (report within 2 days, Art. 73(3)), death (10 days, "
                 "Art. 73(4)), serious (15 days, Art. 73(2)) or other (no report due)")


def _incident_id(value: str) -> str:
    from services.registry.domain.incidents import validate_incident_id
    from shared.ids import UnsafeIdError

    try:
        return validate_incident_id(value)
    except UnsafeIdError as exc:
        raise fail(str(exc), code=2) from None


def _request(model: type, **fields: object) -> object:
    from pydantic import ValidationError

    from shared.validation import describe_validation_error

    try:
        return model(**fields)
    except ValidationError as exc:
        raise fail(describe_validation_error(exc), code=2) from None


def _deadline(incident: IncidentView) -> str:
    if incident.report_deadline is None:
        return "no report due"
    if incident.reported_at is not None:
        return f"reported {incident.reported_at:%Y-%m-%d} ({incident.report_reference})"
    when = f"{incident.report_deadline:%Y-%m-%d %H:%M} UTC"
    return f"[red]{when} OVERDUE[/red]" if incident.overdue else when


def _print(incident: IncidentView) -> None:
    console.print(f"[bold]{incident.id}[/bold]  {incident.status}  severity {incident.severity} ({incident.article})",
                  highlight=False)
    console.print(f"  {incident.title}", highlight=False)
    if incident.description:
        console.print(f"  {incident.description}", highlight=False)
    console.print(f"  affects {', '.join(incident.affected_versions)}; aware since {incident.aware_at:%Y-%m-%d %H:%M} "
                  f"UTC; report: {_deadline(incident)}", highlight=False)
    if incident.audit_entries:
        console.print(f"  audit entries: {', '.join(incident.audit_entries)}", highlight=False)
    for step in incident.history:
        console.print(f"  {step.at:%Y-%m-%d %H:%M:%S} {step.action} by {step.by}: {step.note}", highlight=False)


def _done(incident: IncidentView, as_json: bool, what: str) -> None:
    if as_json:
        print(incident.model_dump_json(indent=2))
        return
    console.print(f"incident {incident.id} {what}; report: {_deadline(incident)}", highlight=False)


@incidents_app.command("open")
def incidents_open(
    title: Annotated[str, typer.Option("--title", help="What happened, in one line.")],
    severity: Annotated[str, typer.Option("--severity", help=SEVERITY_HELP)],
    version: Annotated[list[str], typer.Option("--version", help="An affected model version (repeat).")],
    principal: Annotated[str, typer.Option("--as", help="Principal opening it (approver or admin).")],
    description: Annotated[str, typer.Option(help="Details.")] = "",
    audit_entry: Annotated[list[str] | None, typer.Option("--audit-entry", help="A linked audit event id (repeat).")]
    = None,
    aware_at: Annotated[datetime | None, typer.Option(
        "--aware-at", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"],
        help="When the provider became aware, with its zone (default: now); the deadline counts from it.")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open an incident on model versions; prints its id and the Art. 73 reporting deadline."""
    from services.registry.incident_schemas import IncidentOpen

    request = _request(IncidentOpen, title=title, severity=severity, affected_versions=version,
                       description=description, audit_entries=audit_entry or [], aware_at=aware_at)
    client = common.client_for(token, principal)
    _done(call(lambda: client.open_incident(request)), as_json, "opened")


@incidents_app.command("update")
def incidents_update(
    incident_id: IncidentArgument,
    note: Annotated[str, typer.Option("--note", help="What was learnt or done.")],
    principal: Annotated[str, typer.Option("--as", help="Principal updating it (approver or admin).")],
    severity: Annotated[str | None, typer.Option(help="A new severity: " + SEVERITY_HELP)] = None,
    add_version: Annotated[list[str] | None, typer.Option("--add-version", help="Another affected version.")] = None,
    audit_entry: Annotated[list[str] | None, typer.Option("--audit-entry", help="Another linked audit event id.")]
    = None,
    reported: Annotated[str | None, typer.Option(
        "--reported", help="The Art. 73 report was made: the authority's reference.")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a note to an open incident, and what changed: severity, versions, audit entries, the report made."""
    from services.registry.incident_schemas import IncidentUpdate

    iid = _incident_id(incident_id)
    request = _request(IncidentUpdate, note=note, severity=severity, add_versions=add_version or [],
                       add_audit_entries=audit_entry or [], reported_reference=reported)
    client = common.client_for(token, principal)
    _done(call(lambda: client.update_incident(iid, request)), as_json, "updated")


@incidents_app.command("close")
def incidents_close(
    incident_id: IncidentArgument,
    resolution: Annotated[str, typer.Option("--resolution", help="How it was resolved (required).")],
    principal: Annotated[str, typer.Option("--as", help="Principal closing it (approver or admin).")],
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close an incident with its resolution (an unreported serious incident stays overdue)."""
    from services.registry.incident_schemas import IncidentClose

    iid = _incident_id(incident_id)
    request = _request(IncidentClose, resolution=resolution)
    client = common.client_for(token, principal)
    _done(call(lambda: client.close_incident(iid, request)), as_json, "closed")


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(help="Only incidents in this status (open, closed).")] = None,
    principal: AsOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Incidents, newest first; unreported ones past their reporting deadline are flagged OVERDUE."""
    client = common.client_for(token, principal)
    found = call(lambda: client.list_incidents(status=status))
    if as_json:
        print(json.dumps([i.model_dump(mode="json") for i in found], indent=2))
        return
    table = Table(title="Incidents")
    for column in ("incident", "status", "severity", "versions", "report", "title"):
        table.add_column(column)
    for i in found:
        table.add_row(i.id, i.status, i.severity, ", ".join(i.affected_versions), _deadline(i), i.title)
    console.print(table)


@incidents_app.command("show")
def incidents_show(
    incident_id: IncidentArgument, principal: AsOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """One incident: severity, affected versions, deadline, linked audit entries and its history."""
    iid = _incident_id(incident_id)
    client = common.client_for(token, principal)
    incident = call(lambda: client.get_incident(iid))
    if as_json:
        print(incident.model_dump_json(indent=2))
        return
    _print(incident)


def incident_status(settings: Settings) -> dict[str, object]:
    """For `tunegate status`: open incidents and the overdue ones, asked of the registry with the stored admin
    token (or $TUNEGATE_TOKEN). Says why when it cannot ask, never raises."""
    from services.registry.entrypoints.models_cli import ask_registry

    answer = ask_registry(settings, lambda client: client.list_incidents(status="open"))
    if not answer["checked"]:
        return answer
    found: list[IncidentView] = answer["result"]
    overdue = [{"id": i.id, "severity": i.severity, "report_deadline": i.report_deadline.isoformat()}
               for i in found if i.overdue and i.report_deadline is not None]
    return {"checked": True, "open": len(found), "overdue": overdue}
