"""`tunegate` commands of the registry: submit, jobs list|show, approve, reject, advise, principals.

`principals create|list|revoke` work on the registry database directly: they are the admin bootstrap on
the host that runs the registry, and access to that database is the admin credential. Tokens are
printed once and kept for the local CLI in $TUNEGATE_HOME/cli/tokens.json (mode 0600) so that
`--as NAME` finds them; the database holds only their SHA-256."""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from services.registry.domain.principals import ROLES, new_token, validate_name, validate_roles
from services.registry.domain.states import STATE_NAMES, JobState
from shared.config import Settings
from shared.ids import new_job_id

# Every verb imports what it needs (HTTP client, database, policy, bus) inside its own body, so that
# `tunegate jobs list` does not pay for SQLAlchemy or the policy engine; see services/cli/main.py.
if TYPE_CHECKING:
    from services.registry.adapters.client import RegistryClient
    from services.registry.domain.advice import Advice
    from services.registry.domain.intake import TierDecision
    from services.registry.schemas import ApprovalRequest, ApprovalResult, JobView
    from shared.events.envelope import Envelope
    from shared.events.payloads import UseCase
    from shared.storage.db import Database

jobs_app = typer.Typer(help="Fine-tuning jobs held by the registry.", no_args_is_help=True)
principals_app = typer.Typer(
    help="Principals (requester, approver, deployer, auditor, admin) and their tokens. Runs on the registry "
    "host against its database: access to that database is the admin credential.",
    no_args_is_help=True,
)

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def open_client(settings: Settings) -> RegistryClient:
    """The registry API client; tests replace this function to talk to a TestClient."""
    try:
        base_url = settings.resolved_registry_url()
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    # Imported only once there is a registry to talk to: without a stack the command fails at once.
    import httpx

    from services.registry.adapters.client import RegistryClient

    return RegistryClient(httpx.Client(base_url=base_url, timeout=30.0))


def _call(action: Any) -> Any:
    import httpx

    from services.registry.adapters.client import RegistryAPIError

    try:
        return action()
    except RegistryAPIError as exc:
        raise fail(f"{exc.detail} (HTTP {exc.status} {exc.error})") from None
    except httpx.HTTPError as exc:
        raise fail(f"registry API unreachable: {exc}") from None


# ---------------------------------------------------------------- token store


class TokenStore:
    """Local CLI tokens keyed by principal name, readable by the owner only."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.home_dir / "cli" / "tokens.json"

    def load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except ValueError as exc:
            raise fail(f"{self.path}: token store is not valid JSON ({exc}); fix or delete it") from None
        if not isinstance(data, dict):
            raise fail(f"{self.path}: token store must be a JSON object of name -> token")
        return {str(k): str(v) for k, v in data.items()}

    def _write(self, tokens: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(tokens, handle, indent=2, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def put(self, name: str, token: str) -> None:
        tokens = self.load()
        tokens[name] = token
        self._write(tokens)

    def drop(self, name: str) -> None:
        tokens = self.load()
        if tokens.pop(name, None) is not None:
            self._write(tokens)

    def token_for(self, name: str) -> str:
        token = self.load().get(name)
        if token is None:
            raise fail(
                f"no token for principal {name!r} in {self.path}; pass --token or create it with "
                f"`tunegate principals create {name} --role approver`"
            )
        return token


# ---------------------------------------------------------------- submit


def build_job_requested(spec_path: Path, *, job_id: str, dataset: str | None) -> Envelope:
    from services.registry.jobfile import load_job_file
    from shared.events.envelope import Envelope
    from shared.events.payloads import JobRequested

    spec = load_job_file(spec_path, dataset=dataset)
    return Envelope(
        type="job.requested",
        producer="cli",
        actor=spec.requester,
        subject=job_id,
        payload=JobRequested(job_id=job_id, spec=spec).model_dump(mode="json"),
    )


def submit(
    job_file: Annotated[Path, typer.Argument(help="Job specification (YAML).")],
    dataset: Annotated[
        str | None, typer.Option(help="Use this dataset (path or URI) instead of dataset.uri in the file.")
    ] = None,
    job_id: Annotated[str | None, typer.Option(help="Job id to use (default: a new time-ordered id).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validate a job file and publish job.requested; prints the job id."""
    from redis.exceptions import RedisError

    from services.registry.jobfile import JobFileError
    from shared.bus.publisher import publish

    settings = Settings()
    chosen = job_id or new_job_id()
    try:
        envelope = build_job_requested(job_file, job_id=chosen, dataset=dataset)
    except JobFileError as exc:
        raise fail(str(exc), code=2) from None
    except ValueError as exc:  # e.g. an envelope field (job id) that does not validate
        raise fail(f"{job_file}: {exc}", code=2) from None
    try:
        publish(settings, [envelope])
    except (RuntimeError, OSError, RedisError) as exc:
        raise fail(f"job {chosen} was not submitted: could not publish job.requested: {exc}") from None
    if as_json:
        print(json.dumps({"job_id": chosen, "event_id": envelope.event_id}))
    else:
        print(chosen)


# ---------------------------------------------------------------- jobs list | show


@jobs_app.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option(help=f"Only jobs in this state ({', '.join(JobState)}).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List jobs, newest first."""
    if state is not None and state not in STATE_NAMES:
        raise fail(f"--state: unknown state {state!r} (known: {', '.join(JobState)})", code=2)
    client = open_client(Settings())
    jobs = _call(lambda: client.list_jobs(state=state))
    if as_json:
        print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
        return
    table = Table("id", "state", "tier", "advice", "requester", "use case", "updated")
    for job in jobs:
        table.add_row(
            job.id,
            job.state,
            job.risk_tier,
            job.advice_verdict or "",
            job.requester,
            job.use_case,
            job.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)


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
    table = Table("at (UTC)", "from", "to", "actor", "reason", title="history")
    for step in job.history:
        table.add_row(
            step.at.strftime("%Y-%m-%d %H:%M:%S"), step.from_state or "-", step.to_state, step.actor, step.reason
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one job: tier, licence, advice, scan summary, approvals and its history with actors and times."""
    client = open_client(Settings())
    job = _call(lambda: client.get_job(job_id))
    if as_json:
        print(job.model_dump_json(indent=2))
    else:
        print_job(job)


# ---------------------------------------------------------------- approve | reject


def _decide(job_id: str, principal: str, token: str | None, request: ApprovalRequest) -> ApprovalResult:
    settings = Settings()
    secret = token or TokenStore(settings).token_for(principal)
    client = open_client(settings)
    job = _call(lambda: client.get_job(job_id))
    # Approvers decide knowing what the scanner found and what the advice said.
    print_advice(job.advice)
    print_scan(job.scan_summary)
    return _call(lambda: client.decide(job_id, secret, request))


def approve(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    principal: Annotated[str, typer.Option("--as", help="Approving principal (its token from the CLI store).")],
    comment: Annotated[str, typer.Option(help="Comment; required to override 'prefer RAG' advice.")] = "",
    token: Annotated[str | None, typer.Option(help="Bearer token (overrides the stored one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Approve a job awaiting approval (training starts once enough distinct approvers agreed)."""
    from services.registry.schemas import ApprovalRequest

    result = _decide(job_id, principal, token, ApprovalRequest(decision="approve", comment=comment))
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    override = " (overriding the advice)" if result.override else ""
    console.print(
        f"approved by {result.approver}{override}: {result.approvals_so_far}/{result.required_approvals} "
        f"approvals; job {job_id} is now {result.state}",
        highlight=False,
    )
    if result.training_requested:
        console.print("training requested", highlight=False)


def reject(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    principal: Annotated[str, typer.Option("--as", help="Rejecting principal (its token from the CLI store).")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    token: Annotated[str | None, typer.Option(help="Bearer token (overrides the stored one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Reject a job awaiting approval, with a reason."""
    from services.registry.schemas import ApprovalRequest

    try:
        request = ApprovalRequest(decision="reject", reason=reason)
    except ValidationError:
        raise fail("--reason: a rejection needs a non-empty reason", code=2) from None
    result = _decide(job_id, principal, token, request)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        console.print(f"rejected by {result.approver}; job {job_id} is now {result.state}", highlight=False)


# ---------------------------------------------------------------- advise


def advise_use_case(settings: Settings, use_case: UseCase) -> tuple[TierDecision, Advice]:
    from services.registry.domain.advice import advise
    from services.registry.domain.intake import classify_risk
    from services.registry.domain.policy import RiskRuleRegistry, load_policy

    rules = RiskRuleRegistry.default()
    policy = load_policy(settings.registry_policy_path, rules)
    tier = classify_risk(use_case, policy, rules)
    advice = advise(
        use_case,
        risk_tier="high" if tier.tier == "prohibited" else tier.tier,
        min_examples=policy.advice.min_examples,
    )
    return tier, advice


def advise_cmd(
    knowledge_changes: Annotated[
        str, typer.Option(help="How often the knowledge changes: never, monthly, weekly, daily.")
    ] = "never",
    needs_citations: Annotated[bool, typer.Option("--needs-citations", help="Answers must cite sources.")] = False,
    erasure_obligation: Annotated[
        bool, typer.Option("--erasure-obligation", help="Data subjects may demand erasure (GDPR Art. 17).")
    ] = False,
    proof_of_concept: Annotated[bool, typer.Option("--proof-of-concept", help="Still a proof of concept.")] = False,
    consistent_format: Annotated[
        bool, typer.Option("--consistent-format", help="Needs a voice/format prompts cannot enforce.")
    ] = False,
    smaller_model: Annotated[
        bool, typer.Option("--smaller-model", help="Wants a smaller, cheaper model on a narrow task.")
    ] = False,
    examples: Annotated[int | None, typer.Option(min=0, help="High-quality examples available.")] = None,
    domain: Annotated[str, typer.Option(help="Use-case domain (Annex III area or 'general').")] = "general",
    practice: Annotated[list[str] | None, typer.Option(help="Declared practice (repeatable).")] = None,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Ask the questions one by one.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fine-tune or RAG? Answers the decision matrix without submitting a job."""
    from services.registry.domain.policy import PolicyError
    from shared.events.payloads import UseCase

    if interactive:
        knowledge_changes = typer.prompt(
            "How often does the knowledge change? (never/monthly/weekly/daily)", default=knowledge_changes
        )
        needs_citations = typer.confirm("Must answers cite their sources?", default=needs_citations)
        erasure_obligation = typer.confirm(
            "Is there a GDPR erasure obligation on the data?", default=erasure_obligation
        )
        proof_of_concept = typer.confirm("Is this still a proof of concept?", default=proof_of_concept)
        consistent_format = typer.confirm(
            "Do you need a consistent voice/format that prompts cannot enforce?", default=consistent_format
        )
        smaller_model = typer.confirm("Do you want a smaller, cheaper model on a narrow task?", default=smaller_model)
        answer = typer.prompt("How many high-quality examples do you have? (blank = unknown)", default="")
        examples = int(answer) if answer.strip() else None
        domain = typer.prompt("Domain (e.g. general, employment, credit_scoring, education)", default=domain)
    try:
        use_case = UseCase(
            name="advice",
            knowledge_changes=knowledge_changes,  # type: ignore[arg-type]  # validated just below
            needs_citations=needs_citations,
            erasure_obligation=erasure_obligation,
            proof_of_concept=proof_of_concept,
            needs_consistent_format=consistent_format,
            wants_smaller_model=smaller_model,
            example_count=examples,
            domain=domain,
            practices=practice or [],
        )
    except ValidationError as exc:
        details = "; ".join(f"--{'-'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise fail(details.replace("_", "-"), code=2) from None
    try:
        tier, advice = advise_use_case(Settings(), use_case)
    except PolicyError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps({"risk_tier": tier.model_dump(mode="json"), "advice": advice.as_dict()}, indent=2))
        return
    if tier.tier == "prohibited":
        console.print(f"[red]prohibited:[/red] {tier.reason} — a job like this is rejected", highlight=False)
    else:
        console.print(f"risk tier: {tier.tier} ({tier.rule}: {tier.reason})", highlight=False)
    print_advice(advice.as_dict())


# ---------------------------------------------------------------- principals


def registry_database(settings: Settings) -> Database:
    from services.registry.adapters.tables import METADATA
    from shared.storage.db import Database

    db = Database(settings.database_url_for("registry"))
    METADATA.create_all(db.engine)  # the CLI may bootstrap principals before the service first starts
    return db


@principals_app.command("create")
def principals_create(
    name: Annotated[str, typer.Argument(help="Principal name (e.g. alice@example.com).")],
    role: Annotated[list[str], typer.Option("--role", help=f"Role, repeatable: {', '.join(ROLES)}.")],
    store: Annotated[bool, typer.Option(help="Keep the token in the local CLI token store.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a principal and print its token (shown once; only its hash is stored)."""
    from services.registry.adapters import repository
    from services.registry.domain.errors import RegistryError
    from services.registry.schemas import PrincipalView

    try:
        validate_name(name)
        roles = validate_roles(role)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    settings = Settings()
    token = new_token()
    db = registry_database(settings)
    try:
        with db.transaction() as session:
            row = repository.add_principal(
                session,
                name=name,
                roles=roles,
                token=token,
                created_by=f"host-admin:{getpass.getuser()}",
                now=datetime.now(UTC),
            )
            view = PrincipalView.of(row)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    finally:
        db.dispose()
    if store:
        TokenStore(settings).put(name, token)
    if as_json:
        print(json.dumps({**view.model_dump(mode="json"), "token": token}))
        return
    console.print(f"principal {name} created with roles {', '.join(roles)}", highlight=False)
    console.print(f"token (shown once): {token}", highlight=False, soft_wrap=True)
    if store:
        console.print(f"saved for `--as {name}` in {TokenStore(settings).path}", highlight=False)


@principals_app.command("list")
def principals_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List principals (never their tokens)."""
    from services.registry.adapters import repository
    from services.registry.schemas import PrincipalView

    db = registry_database(Settings())
    try:
        with db.transaction() as session:
            views = [PrincipalView.of(row) for row in repository.list_principals(session)]
    finally:
        db.dispose()
    if as_json:
        print(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        return
    table = Table("name", "roles", "created", "by", "revoked")
    for v in views:
        table.add_row(
            v.name,
            ", ".join(v.roles),
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.created_by,
            v.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if v.revoked_at else "",
        )
    console.print(table)


@principals_app.command("revoke")
def principals_revoke(name: Annotated[str, typer.Argument(help="Principal name.")]) -> None:
    """Revoke a principal: its token stops working at once. The record stays (approvals refer to it)."""
    from services.registry.adapters import repository

    settings = Settings()
    db = registry_database(settings)
    try:
        with db.transaction() as session:
            row = repository.get_principal(session, name)
            if row is None:
                raise fail(f"principal {name!r} not found")
            if row.revoked_at is not None:
                raise fail(f"principal {name!r} was already revoked at {row.revoked_at.isoformat()}")
            row.revoked_at = datetime.now(UTC)
    finally:
        db.dispose()
    TokenStore(settings).drop(name)
    console.print(f"principal {name} revoked", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("advise")(advise_cmd)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(principals_app, name="principals")
