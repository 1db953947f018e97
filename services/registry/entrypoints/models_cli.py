"""`tunegate models ...`: model versions (list, show, approve, deploy, retire, rollback) through the
registry API, the AIBOM and its proof against the audit ledger, and `models bases` (the trainer's base-model
catalogue). Heavy modules are imported inside the commands, so `tunegate --help` stays fast."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, fail
from services.registry.entrypoints.models_aibom_cli import register as register_aibom_commands
from services.trainer.entrypoints.cli import models_bases
from shared.config import Settings

if TYPE_CHECKING:
    from services.registry.adapters.client import RegistryClient
    from services.registry.model_schemas import ModelVersionSummary, ModelVersionView

models_app = typer.Typer(
    help="Model versions: list, show (with the AIBOM), approve, deploy under an alias, retire, roll back; base "
    "models.",
    no_args_is_help=True,
)
models_app.command("bases")(models_bases)
register_aibom_commands(models_app)  # verify-aibom, aibom-proof

VersionArgument = Annotated[str, typer.Argument(help="Model version id, e.g. support-triage.v2.")]
AsOption = Annotated[str | None, typer.Option("--as", help="Principal whose stored token to use.")]


def _version(value: str) -> str:
    from shared.ids import validate_version_id

    try:
        return validate_version_id(value)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None


def _state(version: ModelVersionSummary) -> str:
    colour = {"deployed": "green", "retired": "dim", "deprecated": "yellow"}.get(version.state)
    return f"[{colour}]{version.state}[/{colour}]" if colour else version.state


def _review(version: ModelVersionSummary) -> str:
    when = version.review_by.isoformat()
    return f"[red]{when} OVERDUE[/red]" if version.review_overdue else when


@models_app.command("list")
def models_list(
    state: Annotated[str | None, typer.Option(help="Only versions in this state.")] = None,
    model: Annotated[str | None, typer.Option(help="Only versions of this model name.")] = None,
    principal: AsOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Registered model versions, newest first; versions past their review date are flagged OVERDUE, versions
    recurring monitoring reported on FLAGGED (details: models show)."""
    client = common.client_for(token, principal)
    versions = call(lambda: client.list_models(state=state, model=model))
    if as_json:
        print(json.dumps([v.model_dump(mode="json") for v in versions], indent=2))
        return
    table = Table(title="Model versions")
    for column in ("version", "state", "gate", "approvals", "alias", "tenants", "job", "review by"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v.id, _state(v), "passed" if v.gate_passed else "[red]failed[/red]",
            f"{v.approvals_so_far}/{v.required_approvals}", v.alias or "-", ", ".join(v.tenants) or "-", v.job_id,
            _review(v),
        )
    console.print(table)
    overdue = [v.id for v in versions if v.review_overdue]
    if overdue:
        console.print(f"[red]{len(overdue)} version(s) past their review date:[/red] {', '.join(overdue)}")
    flagged = [f"{v.id} ({v.monitoring_flag_count})" for v in versions if v.monitoring_flag_count]
    if flagged:
        console.print(f"[red]FLAGGED by monitoring:[/red] {', '.join(flagged)} (tunegate models show VERSION)")


def print_version(v: ModelVersionView) -> None:
    gate = "[green]passed[/green]" if v.gate_passed else "[red]FAILED[/red]"
    console.print(f"[bold]{v.id}[/bold]  state {_state(v)}  gate {gate}  tier {v.risk_tier}", highlight=False)
    console.print(f"  job {v.job_id} (requested by {v.requester}), evaluation {v.evaluation_id}", highlight=False)
    console.print(f"  base {v.base_model} ({(v.base_model_sha256 or '?')[:16]}), {v.adapter} artefact "
                  f"{v.artifact.sha256[:16]}", highlight=False)
    console.print(f"  AIBOM {v.aibom.uri}  report {v.report.uri}", highlight=False)
    console.print(f"  approvals {v.approvals_so_far}/{v.required_approvals}: "
                  + (", ".join(a.approver for a in v.approvals) or "none"), highlight=False)
    served = f"alias {v.alias} for tenants {', '.join(v.tenants)}" if v.alias else "not served"
    console.print(f"  {served}", highlight=False)
    plan = v.decommissioning
    console.print(f"  decommissioning: owner {plan.get('owner')}, review by {_review(v)}, audit kept "
                  f"{plan.get('audit_retention_days')} days; retrain when: {plan.get('retraining_trigger')}",
                  highlight=False)
    if v.retired_reason:
        console.print(f"  retired: {v.retired_reason}", highlight=False)
    for flag in v.monitoring_flags:
        console.print(f"  [red]FLAGGED[/red] {flag.at:%Y-%m-%d %H:%M:%S} {flag.kind} ({flag.source}, {flag.action}): "
                      f"{flag.summary}", highlight=False)
    for step in v.transitions:
        console.print(f"  {step.at:%Y-%m-%d %H:%M:%S} {step.from_state or '-'} -> {step.to_state} by {step.actor}: "
                      f"{step.reason}", highlight=False)


@models_app.command("show")
def models_show(
    version_id: VersionArgument,
    aibom: Annotated[bool, typer.Option("--aibom", help="Print the version's AIBOM (CycloneDX 1.6 JSON).")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="With --aibom: write it to this file.")] = None,
    principal: AsOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One model version: lifecycle, approvals, scope, decommissioning plan; or its AIBOM."""
    vid = _version(version_id)
    client = common.client_for(token, principal)
    if aibom:
        from services.registry.aibom.canonical import aibom_bytes

        document = aibom_bytes(call(lambda: client.get_aibom(vid)))
        if out is not None:
            out.write_bytes(document)
            console.print(f"AIBOM of {vid} written to {out}", highlight=False)
        else:
            print(document.decode(), end="")
        return
    version = call(lambda: client.get_model(vid))
    if as_json:
        print(version.model_dump_json(indent=2))
        return
    print_version(version)


@models_app.command("approve")
def models_approve(
    version_id: VersionArgument,
    principal: Annotated[str, typer.Option("--as", help="Approving principal (role approver).")],
    comment: Annotated[str, typer.Option(help="Recorded with the approval.")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a gate-passing version (its job's requester cannot; high-risk needs two approvers)."""
    from services.registry.model_schemas import ModelApprovalRequest

    vid = _version(version_id)
    client = common.client_for(token, principal)
    result = call(lambda: client.approve_model(vid, ModelApprovalRequest(comment=comment)))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    console.print(f"{vid}: approved by {result.approver} ({result.approvals_so_far}/{result.required_approvals}); "
                  f"state {result.state}", highlight=False)


@models_app.command("deploy")
def models_deploy(
    version_id: VersionArgument,
    alias: Annotated[str, typer.Option("--alias", help="The model name gateway clients call.")],
    tenant: Annotated[list[str], typer.Option("--tenant", help="A gateway tenant that may call it (repeat).")],
    principal: Annotated[str, typer.Option("--as", help="Deploying principal (role deployer).")],
    watermark: Annotated[bool, typer.Option("--watermark/--no-watermark",
                                            help="The gateway marks the served text with a statistical watermark.")]
    = False,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Serve an approved version under ALIAS to the tenants; the version the alias served is deprecated."""
    from pydantic import ValidationError

    from services.registry.model_schemas import DeploymentRequest
    from shared.validation import describe_validation_error

    vid = _version(version_id)
    try:
        request = DeploymentRequest(alias=alias, tenants=tenant, watermark=watermark)
    except ValidationError as exc:
        raise fail(describe_validation_error(exc), code=2) from None
    client = common.client_for(token, principal)
    result = call(lambda: client.deploy_model(vid, request))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    replaced = f"; {result.deprecated} deprecated" if result.deprecated else ""
    marked = ", watermarked" if result.alias.watermark else ""
    console.print(f"{vid} deployed as {alias!r} for tenants {', '.join(result.alias.tenants)}{marked}{replaced}",
                  highlight=False)


@models_app.command("retire")
def models_retire(
    version_id: VersionArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (required; recorded and published).")],
    principal: Annotated[str, typer.Option("--as", help="Retiring principal (deployer or admin).")],
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retire a version for good: model.retired tells the gateway to stop serving it at once."""
    from services.registry.model_schemas import RetirementRequest

    vid = _version(version_id)
    if not reason.strip():
        raise fail("--reason: retiring a version needs a reason", code=2)
    client = common.client_for(token, principal)
    version = call(lambda: client.retire_model(vid, RetirementRequest(reason=reason)))
    if as_json:
        print(version.model_dump_json(indent=2))
        return
    console.print(f"{vid} retired: {version.retired_reason}", highlight=False)


@models_app.command("rollback")
def models_rollback(
    alias: Annotated[str, typer.Argument(help="The alias to put back on the version it served before.")],
    principal: Annotated[str, typer.Option("--as", help="Deploying principal (role deployer).")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the move).")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Roll ALIAS back to the version it served before; the current one is deprecated."""
    from services.registry.model_schemas import RollbackRequest
    from shared.ids import validate_model_name

    try:
        validate_model_name(alias, "alias")
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    client = common.client_for(token, principal)
    result = call(lambda: client.rollback_alias(alias, RollbackRequest(reason=reason)))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    console.print(f"alias {alias!r} rolled back to {result.version.id}"
                  + (f"; {result.deprecated} deprecated" if result.deprecated else ""), highlight=False)


def ask_registry(settings: Settings, question: Callable[[RegistryClient], Any]) -> dict[str, Any]:
    """For `tunegate status`: ask the registry one question with the stored admin token (or $TUNEGATE_TOKEN).
    {"checked": True, "result": ...}, or {"checked": False, "detail": why}; never raises."""
    import os

    import httpx

    from services.registry.adapters.client import RegistryAPIError, RegistryClient

    token = os.environ.get(common.TOKEN_ENV, "").strip() or common.credentials(settings).admin_token()
    if not token:
        return {"checked": False, "detail": "no admin token on this machine to ask the registry"}
    try:
        base_url = settings.resolved_registry_url()
    except RuntimeError as exc:
        return {"checked": False, "detail": str(exc)}
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            return {"checked": True, "result": question(RegistryClient(http, token))}
    except (RegistryAPIError, httpx.HTTPError) as exc:
        return {"checked": False, "detail": f"registry not asked: {exc}"}


def review_status(settings: Settings) -> dict[str, object]:
    """For `tunegate status`: model versions past their review date."""
    answer = ask_registry(settings, lambda client: client.list_models())
    if not answer["checked"]:
        return answer
    versions: list[ModelVersionSummary] = answer["result"]
    overdue = [{"id": v.id, "state": v.state, "review_by": v.review_by.isoformat()} for v in versions
               if v.review_overdue]
    return {"checked": True, "versions": len(versions), "overdue": overdue}
