"""How the CLI prints a job: its advice, its scan (with the detectors that ran) and the job itself with its
history. Shared by `jobs show`, `approve`, `reject` and `advise`."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from services.registry.domain.states import JobState
from services.registry.entrypoints.cli_common import console
from services.registry.schemas import JobView


def print_advice(advice: dict[str, Any]) -> None:
    if not advice:
        return
    console.print(f"[bold]advice:[/bold] {advice.get('summary', advice.get('verdict'))}", highlight=False)
    for reason in advice.get("reasons", []):
        console.print(f"  - {reason}", highlight=False)
    for reason in advice.get("supporting", []):
        console.print(f"  + (other way) {reason}", highlight=False)
    for warning in advice.get("warnings", []):
        console.print(f"  [yellow]! {warning}[/yellow]", highlight=False)
    if advice.get("requires_override"):
        console.print("  approving needs an override comment (--comment)", highlight=False)


def print_scan(summary: dict[str, Any] | None) -> None:
    if not summary:
        console.print("[bold]scan:[/bold] not scanned yet", highlight=False)
        return
    console.print(
        f"[bold]scan:[/bold] verdict {summary.get('verdict')}, {summary.get('record_count')} records, "
        f"classification {summary.get('classification')}, fingerprint {str(summary.get('fingerprint'))[:16]}…",
        highlight=False,
    )
    detectors = summary.get("detectors") or {}
    if detectors.get("ner"):
        console.print(f"  detectors: NER on ({detectors.get('ner_model')} {detectors.get('ner_model_version')})",
                      highlight=False)
    else:
        console.print("  [yellow]detectors: NER OFF: names and places in free text were not looked for[/yellow]",
                      highlight=False)
    for entity, actions in sorted((summary.get("totals") or {}).items()):
        counts = ", ".join(f"{action} {count}" for action, count in sorted(actions.items()))
        console.print(f"  {entity}: {counts}", highlight=False)
    for reason in summary.get("blocking_reasons") or []:
        console.print(f"  [red]blocking: {reason}[/red]", highlight=False)


def print_job(job: JobView) -> None:
    console.print(f"[bold]{job.id}[/bold]  state [bold]{job.state}[/bold]", highlight=False)
    console.print(f"use case: {job.use_case} (requested by {job.requester})", highlight=False)
    console.print(f"base model: {job.base_model}; licence {job.licence_id or 'unknown'}: {job.licence_decision}")
    console.print(f"risk tier: {job.risk_tier} (rule {job.tier_rule}: {job.tier_reason})", highlight=False)
    print_advice(job.advice)
    print_scan(job.scan_summary)
    approved = sum(1 for a in job.approvals if a.decision == "approve")
    console.print(f"approvals: {approved}/{job.required_approvals}", highlight=False)
    for approval in job.approvals:
        note = approval.comment or approval.reason
        override = " [override]" if approval.override else ""
        console.print(f"  {approval.decision} by {approval.approver}{override}: {note}", highlight=False)
    if job.approval_expires_at and job.state == JobState.AWAITING_APPROVAL:
        console.print(f"approval window closes {job.approval_expires_at.isoformat()}", highlight=False)
    for reason in job.rejection_reasons:
        console.print(f"[red]reason: {reason}[/red]", highlight=False)
    latest = job.latest_evaluation
    if latest is not None:
        outcome = "passed" if latest.passed else f"failed on {len(latest.failing_metrics)} check(s)"
        console.print(
            f"evaluation: gate {outcome} (evaluation {latest.evaluation_id}); `tunegate eval show {job.id}`",
            highlight=False,
        )
    table = Table("at (UTC)", "from", "to", "actor", "reason", title="history")
    for step in job.history:
        table.add_row(
            step.at.strftime("%Y-%m-%d %H:%M:%S"), step.from_state or "-", step.to_state, step.actor, step.reason
        )
    console.print(table)
