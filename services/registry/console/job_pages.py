"""Console pages for jobs: the list with filters, a job's page (with its training progress: loss chart and
ETA, live while it trains), and an approver's decision.

Roles are the API's: reading as GET /jobs and GET /jobs/{id} (requesters see only their own jobs), deciding
as POST /jobs/{id}/approvals, through the same decide_on_job and the same domain checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.registry.adapters import repository
from services.registry.adapters.training_progress import points_of
from services.registry.console.app import Console, Viewer
from services.registry.domain import access
from services.registry.domain.approvals import APPROVER_ROLE, approvers
from services.registry.domain.errors import InvalidRequest
from services.registry.domain.job import Job
from services.registry.domain.policy import RiskTier
from services.registry.domain.states import STATE_NAMES, JobState
from services.registry.domain.training_progress import Progress, chart, duration, summarise
from services.registry.entrypoints.http import decide_on_job
from services.registry.schemas import ApprovalRequest, JobSummary, JobView
from shared.ids import validate_job_id

RISK_TIERS: tuple[str, ...] = RiskTier.__args__  # type: ignore[attr-defined]
LIST_LIMIT = 200
MAX_FILTER_CHARS = 200


@dataclass(frozen=True)
class Duties:
    """Separation of duties on one job, as the page shows it."""

    requester: str
    approved_by: list[str]
    rejected_by: list[str]
    required: int
    still_needed: int
    viewer_may_decide: bool
    why_not: str


def duties(job: Job, viewer: Viewer) -> Duties:
    approved = approvers(job.approvals)
    rejected = [a.approver for a in job.approvals if a.decision == "reject"]
    name = viewer.principal.name
    why_not = ""
    if job.state != JobState.AWAITING_APPROVAL:
        why_not = f"the job is {job.state.value}, not awaiting approval"
    elif APPROVER_ROLE not in viewer.principal.roles:
        why_not = f"deciding needs the '{APPROVER_ROLE}' role; you hold {', '.join(viewer.principal.roles)}"
    elif name == job.requester:
        why_not = "you requested this job: separation of duties bars you from approving it"
    elif any(a.approver == name for a in job.approvals):
        why_not = "you already decided on this job (one decision each)"
    return Duties(
        requester=job.requester,
        approved_by=approved,
        rejected_by=rejected,
        required=job.required_approvals,
        still_needed=max(0, job.required_approvals - len(approved)),
        viewer_may_decide=not why_not,
        why_not=why_not,
    )


def _finite(value: float | None) -> float | None:
    """A diverged run logs NaN or infinite losses: JSON has no such numbers, and the page shows them as '-'."""
    return value if value is not None and math.isfinite(value) else None


def progress_json(job: Job, progress: Progress) -> dict[str, object]:
    """What the job page's poller (static/progress.js) redraws: the same chart geometry the page was rendered
    with, so the drawing is computed here only."""
    drawn = chart(progress.points)
    return {
        "state": job.state.value,
        "training": job.state == JobState.TRAINING,
        "step": progress.step,
        "total_steps": progress.total_steps,
        "percent": progress.percent,
        "loss": _finite(progress.loss),
        "eta_s": _finite(progress.eta_s),
        "eta": duration(progress.eta_s),
        "points": len(progress.points),
        "polyline": drawn.polyline,
        "loss_min": drawn.loss_min,
        "loss_max": drawn.loss_max,
        "step_max": drawn.step_max,
    }


def _filter(name: str, value: str | None, known: tuple[str, ...] | frozenset[str] | None = None) -> str | None:
    value = (value or "").strip() or None
    if value is None:
        return None
    if len(value) > MAX_FILTER_CHARS:
        raise InvalidRequest(f"{name}: at most {MAX_FILTER_CHARS} characters")
    if known is not None and value not in known:
        raise InvalidRequest(f"{name}: unknown value {value!r} (known: {', '.join(sorted(known))})")
    return value


def add_routes(app: FastAPI, console: Console) -> None:
    runtime = console.runtime

    @app.get("/jobs", response_class=HTMLResponse)
    def jobs(
        request: Request,
        state: str | None = Query(default=None),
        risk_tier: str | None = Query(default=None),
        requester: str | None = Query(default=None),
        viewer: Viewer = console.requires(access.READ_JOBS + access.SUBMIT, "listing jobs"),
    ) -> Response:
        filters = {
            "state": _filter("state", state, STATE_NAMES),
            "risk_tier": _filter("risk_tier", risk_tier, RISK_TIERS),
            "requester": _filter("requester", requester),
        }
        if not access.reads_every_job(viewer.principal):
            filters["requester"] = viewer.principal.name  # as the API: a requester lists only its own jobs
        with runtime.db.transaction() as db:
            found = repository.list_jobs(db, **filters, limit=LIST_LIMIT)  # type: ignore[arg-type]
        return console.page(
            request,
            "jobs.html",
            viewer,
            jobs=[JobSummary.of(job) for job in found],
            filters=filters,
            states=sorted(STATE_NAMES),
            tiers=RISK_TIERS,
            limit=LIST_LIMIT,
        )

    def load(viewer: Viewer, job_id: str) -> tuple[Job, Progress]:
        validate_job_id(job_id)
        with runtime.db.transaction() as db:
            found = repository.require_job(db, job_id)
            access.check_reads_job(viewer.principal, job_id, found.requester)
            return found, summarise(points_of(db, job_id))

    @app.get("/jobs/{job_id}/progress.json")
    def progress(
        job_id: str, viewer: Viewer = console.requires(access.READ_JOBS + access.SUBMIT, "reading a job")
    ) -> Response:
        found, progress = load(viewer, job_id)
        return JSONResponse(progress_json(found, progress))

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job(
        request: Request,
        job_id: str,
        viewer: Viewer = console.requires(access.READ_JOBS + access.SUBMIT, "reading a job"),
    ) -> Response:
        found, progress = load(viewer, job_id)
        trace_id = found.traceparent.split("-")[1] if found.traceparent else None
        return console.page(
            request,
            "job.html",
            viewer,
            job=JobView.of(found),
            duties=duties(found, viewer),
            trace_id=trace_id,
            progress=progress_json(found, progress),
        )

    @app.post("/jobs/{job_id}/decision")
    async def decide(
        request: Request, job_id: str, viewer: Viewer = console.requires(access.DECIDE, "deciding on a job")
    ) -> Response:
        validate_job_id(job_id)
        form = await console.form(request, viewer)
        body = ApprovalRequest.model_validate({key: form.get(key, "") for key in ("decision", "comment", "reason")})
        outcome, view = await decide_on_job(runtime, console.governance, viewer.principal, job_id, body)
        if outcome.expired:
            return console.page(
                request,
                "error.html",
                viewer,
                status=409,
                title="Approval window closed",
                detail=f"job {job_id}: the approval window closed at {view.approval_expires_at}; it is now expired",
            )
        return RedirectResponse(f"/console/jobs/{job_id}", status_code=303)
