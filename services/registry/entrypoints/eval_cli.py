"""`tunegate eval run|show`: ask the registry to evaluate a trained job again, and show the release gate's
verdict, fine-tuned vs base per suite, and where the reports are. Clients of the registry API."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, fail
from services.registry.schemas import EvaluationRunRequest, EvaluationView
from shared.config import Settings

eval_app = typer.Typer(
    help="Evaluations of trained jobs: run them again, show the release gate's verdict and the reports.",
    no_args_is_help=True,
)


@eval_app.command("run")
def eval_run(
    job_id: Annotated[str, typer.Argument(help="Job id (trained, evaluated or gate_failed).")],
    principal: Annotated[
        str, typer.Option("--as", help="Asking principal: the job's requester, an approver or an admin.")
    ],
    suites: Annotated[
        str | None, typer.Option(help="Comma-separated suites to run (default: every configured suite).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded with the request).")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a trained job again: the registry emits evaluation.requested for the evaluator."""
    wanted = None if suites is None else [name.strip() for name in suites.split(",") if name.strip()]
    if wanted == []:
        raise fail("--suites: name at least one suite (e.g. --suites task_quality,bias), or leave it out", code=2)
    client = common.client_for(token, principal)
    request = call(lambda: client.request_evaluation(job_id, EvaluationRunRequest(suites=wanted, reason=reason)))
    if as_json:
        print(request.model_dump_json(indent=2))
        return
    which = ", ".join(request.suites) if request.suites else "every configured suite"
    console.print(
        f"evaluation of job {job_id} requested by {request.requested_by} ({which}); request {request.request_id}. "
        f"The job (now {request.state}) moves to evaluating when the evaluator starts.",
        highlight=False,
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _report_path(ref: Any, store: Any) -> str | None:
    """The local path of a report in the artefact store, or None when it is not on this machine."""
    try:
        return str(store.resolve(ref.uri))
    except (ValueError, FileNotFoundError):
        return None


def print_verdict(run: EvaluationView, paths: dict[str, str | None]) -> None:
    verdict = run.verdict
    assert verdict is not None
    outcome = "[green]PASSED[/green]" if verdict.passed else "[red]FAILED[/red]"
    finished = run.finished_at.strftime("%Y-%m-%d %H:%M:%S") if run.finished_at else "?"
    asked = f"asked by {run.requested_by}" if run.requested_by else "after training"
    console.print(
        f"verdict: gate {outcome} (evaluation {run.evaluation_id}, {asked}, finished {finished} UTC; policy "
        f"{verdict.policy}, tier {verdict.risk_tier}, {verdict.checked} checks)",
        highlight=False,
    )
    for failure in run.failing_metrics:
        base = f", base {_number(failure.base)}" if failure.base is not None else ""
        console.print(
            f"  [red]- {failure.metric}: value {_number(failure.value)}, threshold {failure.rule} "
            f"{_number(failure.threshold)}{base}[/red]",
            highlight=False,
        )
    table = Table("suite", "metric", "fine-tuned", "base", "change", title="suites: fine-tuned vs base")
    for suite in run.suites:
        names = list(suite.metrics) + [name for name in suite.base_metrics if name not in suite.metrics]
        for name in names:
            tuned, base = suite.metrics.get(name), suite.base_metrics.get(name)
            change = "-" if tuned is None or base is None else f"{tuned - base:+.4g}"
            table.add_row(suite.name, name, _number(tuned), _number(base), change)
    console.print(table)
    for label, ref in (("report", run.report), ("report (HTML)", run.report_html)):
        if ref is None:
            continue
        local = paths.get(label)
        note = "" if local else "; not in the local store"
        where = f"{local or ref.uri} (sha256 {ref.sha256}{note})"
        console.print(f"{label}: {where}", highlight=False, soft_wrap=True)


@eval_app.command("show")
def eval_show(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    principal: Annotated[str | None, typer.Option("--as", help="Read as this principal (its stored token).")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job's verdict: failing metrics with their thresholds, each suite's metrics for the fine-tuned and
    the base model, and where the reports are."""
    from shared.storage.artifacts import ArtifactStore

    client = common.client_for(token, principal)
    job = call(lambda: client.get_job(job_id))
    runs: list[EvaluationView] = call(lambda: client.list_evaluations(job_id))  # newest first
    latest = next((run for run in runs if run.verdict is not None and run.verdict.complete), None)
    running = [run for run in runs if run.status == "running"]
    # An evaluator error newer than the verdict: the verdict stands, but say what went wrong since.
    errors = [run for run in runs[: runs.index(latest) if latest else len(runs)] if run.status == "error"]
    paths: dict[str, str | None] = {}
    if latest is not None:
        store = ArtifactStore(Settings().home_dir / "artifacts")
        paths = {
            "report": _report_path(latest.report, store) if latest.report else None,
            "report (HTML)": _report_path(latest.report_html, store) if latest.report_html else None,
        }
    if as_json:
        body = {
            "job_id": job_id,
            "state": job.state,
            "evaluation": None if latest is None else latest.model_dump(mode="json"),
            "report_path": paths.get("report"),
            "report_html_path": paths.get("report (HTML)"),
            "running": [run.evaluation_id for run in running],
            "errors_since": [{"evaluation_id": run.evaluation_id, "error": run.error} for run in errors],
        }
        print(json.dumps(body, indent=2))
        return
    console.print(f"[bold]{job.id}[/bold]  state [bold]{job.state}[/bold]", highlight=False)
    for run in running:
        console.print(f"evaluation {run.evaluation_id} running since {run.started_at.isoformat()}", highlight=False)
    for run in errors:
        console.print(f"[yellow]evaluation {run.evaluation_id} failed: {run.error}[/yellow]", highlight=False)
    if latest is None:
        console.print("no verdict yet", highlight=False)
        return
    print_verdict(latest, paths)


