"""`tunegate` commands of the registry: submit, jobs list|show|cancel, approve, reject, advise,
principals create|rotate|revoke|list, admin bootstrap.

Every command but `advise` and `submit` is a client of the registry API, authenticated by a bearer token:
`--token`, else the token kept for `--as NAME` in $TUNEGATE_HOME/credentials/NAME/token, else
$TUNEGATE_TOKEN, else the first admin's $TUNEGATE_HOME/credentials/admin.token. `submit --as NAME` signs
`job.requested` with NAME's key ($TUNEGATE_HOME/credentials/NAME/signing.key) and publishes it on the bus.

Start-up matters for a CLI: fastapi, sqlalchemy and httpx are imported inside the commands that use them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from services.registry.domain.principals import ROLES, validate_name, validate_roles
from services.registry.domain.states import STATE_NAMES, JobState
from services.registry.schemas import (
    AdminBootstrap,
    ApprovalRequest,
    ApprovalResult,
    CancelRequest,
    JobView,
    PrincipalCreate,
    PrincipalCredentials,
    PrincipalRevoke,
    PrincipalRotate,
)
from shared.config import Settings
from shared.events.payloads import UseCase

if TYPE_CHECKING:
    from services.registry.adapters.client import RegistryClient
    from services.registry.domain.advice import Advice
    from services.registry.domain.intake import TierDecision

jobs_app = typer.Typer(help="Fine-tuning jobs held by the registry.", no_args_is_help=True)
principals_app = typer.Typer(
    help="Principals (requester, approver, deployer, auditor, admin): created, rotated and revoked through the "
    "registry API with an admin token; every change is an audited event.",
    no_args_is_help=True,
)
admin_app = typer.Typer(help="The first admin of a fresh registry.", no_args_is_help=True)

console = Console()
err_console = Console(stderr=True)

TOKEN_ENV = "TUNEGATE_TOKEN"
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help=f"Bearer token (default: --as NAME's stored token, ${TOKEN_ENV}, admin.token)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def credentials(settings: Settings) -> Any:
    from services.registry.adapters.credentials import CredentialStore

    return CredentialStore(settings)


def resolve_token(settings: Settings, token: str | None, principal: str | None = None) -> str:
    """--token, else --as NAME's stored token, else $TUNEGATE_TOKEN, else the stored admin token."""
    if token:
        return token
    store = credentials(settings)
    if principal is not None:
        stored = _guard(lambda: store.token(principal))
        if stored is None:
            raise fail(
                f"no token for principal {principal!r} in {store.principal_dir(principal)}; pass --token, or have an "
                f"admin run `tunegate principals create {principal} --role ...` (or rotate it) on this machine"
            )
        return stored
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    admin = store.admin_token()
    if admin:
        return admin
    raise fail(
        f"no token: pass --token or --as NAME, set ${TOKEN_ENV}, or bootstrap the first admin with "
        f"`tunegate admin bootstrap` (it stores {store.admin_token_path})"
    )


def open_client(settings: Settings, token: str | None) -> RegistryClient:
    """The registry API client; tests replace this function to talk to a TestClient."""
    import httpx

    from services.registry.adapters.client import RegistryClient

    try:
        base_url = settings.resolved_registry_url()
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    return RegistryClient(httpx.Client(base_url=base_url, timeout=30.0), token)


def _guard(action: Any) -> Any:
    """Run one step; a credential problem or an invalid name becomes a clear error, never a traceback."""
    from services.registry.adapters.credentials import CredentialError

    try:
        return action()
    except CredentialError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc), code=2) from None


def _call(action: Any) -> Any:
    import httpx

    from services.registry.adapters.client import RegistryAPIError

    try:
        return action()
    except RegistryAPIError as exc:
        raise fail(f"{exc.detail} (HTTP {exc.status} {exc.error})") from None
    except httpx.HTTPError as exc:
        raise fail(f"registry API unreachable: {exc}") from None


def client_for(token: str | None, principal: str | None = None) -> RegistryClient:
    settings = Settings()
    return open_client(settings, resolve_token(settings, token, principal))


# ---------------------------------------------------------------- submit


def check_job_id_free(client: RegistryClient, job_id: str) -> None:
    """Ask the registry, with the submitter's own token, whether the id is taken (404 = free). The registry
    refuses a reused id as well; asking first turns a late refusal into an immediate one."""
    from services.registry.adapters.client import RegistryAPIError

    def probe() -> None:
        try:
            client.get_job(job_id)
        except RegistryAPIError as exc:
            if exc.status == 404:
                return
            if exc.status != 403:
                raise
        raise fail(f"--job-id: job id {job_id} is already taken; pick a new one (or leave --job-id out)")

    _call(probe)


def submit(
    job_file: Annotated[Path, typer.Argument(help="Job specification (YAML).")],
    principal: Annotated[str, typer.Option("--as", help="Submitting principal: signs job.requested with its key.")],
    dataset: Annotated[
        str | None, typer.Option(help="Use this dataset (path or URI) instead of dataset.uri in the file.")
    ] = None,
    job_id: Annotated[
        str | None,
        typer.Option(help="Job id to use (default: a new time-ordered id); a given id is checked with the registry."),
    ] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a job file, sign job.requested as the principal and publish it; prints the job id."""
    from redis.exceptions import RedisError

    from services.registry.adapters import submitter
    from services.registry.jobfile import JobFileError, load_job_file
    from shared.events.envelope import Envelope
    from shared.events.payloads import JobRequested
    from shared.ids import new_job_id
    from shared.security.signing import EnvelopeSigner, principal_identity

    settings = Settings()
    _guard(lambda: validate_name(principal))
    signer = EnvelopeSigner(principal_identity(principal), _guard(lambda: credentials(settings).signing_key(principal)))
    if job_id is not None:
        check_job_id_free(open_client(settings, resolve_token(settings, token, principal)), job_id)
    chosen = job_id or new_job_id()
    try:
        spec = load_job_file(job_file, requester=principal, dataset=dataset)
        envelope = Envelope(
            type="job.requested",
            producer=signer.identity,
            actor=principal,
            subject=chosen,
            payload=JobRequested(job_id=chosen, spec=spec).model_dump(mode="json"),
        )
    except JobFileError as exc:
        raise fail(str(exc), code=2) from None
    except ValueError as exc:  # e.g. an envelope field (job id) that does not validate
        raise fail(f"{job_file}: {exc}", code=2) from None
    try:
        published = submitter.publish_signed(settings, envelope, signer.sign)
    except (RuntimeError, OSError, RedisError) as exc:
        raise fail(f"job {chosen} was not submitted: could not publish job.requested: {exc}") from None
    if as_json:
        print(json.dumps({"job_id": chosen, "event_id": published.event_id, "requester": principal}))
    else:
        print(chosen)


# ---------------------------------------------------------------- jobs list | show | cancel


@jobs_app.command("list")
def jobs_list(
    state: Annotated[str | None, typer.Option(help=f"Only jobs in this state ({', '.join(JobState)}).")] = None,
    principal: Annotated[str | None, typer.Option("--as", help="Read as this principal (its stored token).")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first (a requester sees its own jobs only)."""
    if state is not None and state not in STATE_NAMES:
        raise fail(f"--state: unknown state {state!r} (known: {', '.join(JobState)})", code=2)
    client = client_for(token, principal)
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
    principal: Annotated[str | None, typer.Option("--as", help="Read as this principal (its stored token).")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one job: tier, licence, advice, scan summary, approvals and its history with actors and times."""
    client = client_for(token, principal)
    job = _call(lambda: client.get_job(job_id))
    if as_json:
        print(job.model_dump_json(indent=2))
    else:
        print_job(job)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    principal: Annotated[str, typer.Option("--as", help="Cancelling principal: the job's requester or an admin.")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the cancellation).")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job: before training it ends at once; during training the trainer is asked to stop."""
    client = client_for(token, principal)
    result = _call(lambda: client.cancel(job_id, CancelRequest(reason=reason)))
    if as_json:
        print(result.model_dump_json(indent=2))
    elif result.training_cancel_requested:
        console.print(f"job {job_id}: the trainer was asked to stop (training.cancel.requested)", highlight=False)
    else:
        console.print(f"job {job_id} is now {result.state}", highlight=False)


# ---------------------------------------------------------------- approve | reject


def _decide(job_id: str, principal: str, token: str | None, request: ApprovalRequest) -> ApprovalResult:
    client = client_for(token, principal)
    job = _call(lambda: client.get_job(job_id))
    # Approvers decide knowing what the scanner found and what the advice said.
    print_advice(job.advice)
    print_scan(job.scan_summary)
    return _call(lambda: client.decide(job_id, request))


def approve(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    principal: Annotated[str, typer.Option("--as", help="Approving principal (its stored token).")],
    comment: Annotated[str, typer.Option(help="Comment; required to override 'prefer RAG' advice.")] = "",
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a job awaiting approval (training starts once enough distinct approvers agreed)."""
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
    principal: Annotated[str, typer.Option("--as", help="Rejecting principal (its stored token).")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a job awaiting approval, with a reason."""
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
    from services.registry.adapters.policy_file import load_policy
    from services.registry.domain.advice import advise
    from services.registry.domain.intake import classify_risk
    from services.registry.domain.policy import RiskRuleRegistry

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
    from services.registry.domain.policy import PolicyError

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


def _new_signing_key(wanted: bool | None, roles: list[str]) -> tuple[Any, str | None]:
    """A fresh Ed25519 key pair made here (the private half never leaves this machine) when the principal
    submits jobs, or when asked; returns (private key or None, public key hex or None)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.security.keys import public_key_raw

    if not (wanted if wanted is not None else "requester" in roles):
        return None, None
    key = Ed25519PrivateKey.generate()
    return key, public_key_raw(key.public_key()).hex()


def _store_credentials(settings: Settings, name: str, token: str, key: Any) -> list[Path]:
    store = credentials(settings)
    saved = [_guard(lambda: store.save_token(name, token))]
    if key is not None:
        saved.append(_guard(lambda: store.save_signing_key(name, key)))
    return saved


def _show_credentials(created: PrincipalCredentials, saved: list[Path], verb: str, as_json: bool) -> None:
    view = created.principal
    if as_json:
        print(json.dumps({**view.model_dump(mode="json"), "token": created.token, "stored": [str(p) for p in saved]}))
        return
    console.print(f"principal {view.name} {verb} with roles {', '.join(view.roles)}", highlight=False)
    console.print(f"token (shown once): {created.token}", highlight=False, soft_wrap=True)
    current = next((k for k in reversed(view.keys) if k.retired_at is None), None)
    if current is not None:
        console.print(f"event-signing key {current.key_id} registered", highlight=False)
    for path in saved:
        console.print(f"saved {path}", highlight=False)


@principals_app.command("create")
def principals_create(
    name: Annotated[str, typer.Argument(help="Principal name (e.g. alice@example.com).")],
    role: Annotated[list[str], typer.Option("--role", help=f"Role, repeatable: {', '.join(ROLES)}.")],
    signing_key: Annotated[
        bool | None,
        typer.Option(
            "--signing-key/--no-signing-key",
            help="Make an event-signing key pair here and register its public half (default: for requesters).",
        ),
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="Register this Ed25519 public key (hex) instead: an upstream system's own.")
    ] = None,
    store: Annotated[bool, typer.Option(help="Keep the token (and key) under $TUNEGATE_HOME/credentials/NAME.")] = True,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a principal through the registry API (admin token); prints its token once."""
    try:
        validate_name(name)
        roles = validate_roles(role)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    settings = Settings()
    key, public_hex = (None, public_key) if public_key else _new_signing_key(signing_key, roles)
    client = client_for(token)
    created = _call(lambda: client.create_principal(PrincipalCreate(name=name, roles=roles, public_key=public_hex)))
    saved = _store_credentials(settings, name, created.token, key) if store else []
    _show_credentials(created, saved, "created", as_json)


@principals_app.command("rotate")
def principals_rotate(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    signing_key: Annotated[
        bool | None,
        typer.Option(
            "--signing-key/--no-signing-key",
            help="Also replace the event-signing key (default: when the principal has one).",
        ),
    ] = None,
    store: Annotated[
        bool, typer.Option(help="Keep the new token (and key) under $TUNEGATE_HOME/credentials/NAME.")
    ] = True,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """New credentials: a new token always; a new signing key (made here) when it has one. The old token stops
    working at once; the old public key is kept to verify what it signed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.security.keys import public_key_raw

    _guard(lambda: validate_name(name))
    settings = Settings()
    client = client_for(token)
    if signing_key is None:
        listed = {p.name: p for p in _call(client.list_principals)}
        if name not in listed:
            raise fail(f"principal {name!r} not found")
        signing_key = any(k.retired_at is None for k in listed[name].keys)
    key = Ed25519PrivateKey.generate() if signing_key else None
    public_hex = public_key_raw(key.public_key()).hex() if key is not None else None
    rotated = _call(lambda: client.rotate_principal(name, PrincipalRotate(public_key=public_hex)))
    saved = _store_credentials(settings, name, rotated.token, key) if store else []
    _show_credentials(rotated, saved, "rotated", as_json)


@principals_app.command("list")
def principals_list(token: TokenOption = None, as_json: JsonOption = False) -> None:
    """List principals and their signing keys (never tokens); needs role auditor or admin."""
    client = client_for(token)
    views = _call(client.list_principals)
    if as_json:
        print(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        return
    table = Table("name", "roles", "signing key", "created", "by", "revoked")
    for v in views:
        current = next((k.key_id for k in reversed(v.keys) if k.retired_at is None), "")
        table.add_row(
            v.name,
            ", ".join(v.roles),
            current,
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.created_by,
            v.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if v.revoked_at else "",
        )
    console.print(table)


@principals_app.command("revoke")
def principals_revoke(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit ledger).")] = "",
    token: TokenOption = None,
) -> None:
    """Revoke a principal: its token and key stop working at once. The record stays (approvals refer to it)."""
    _guard(lambda: validate_name(name))
    client = client_for(token)
    _call(lambda: client.revoke_principal(name, PrincipalRevoke(reason=reason)))
    _guard(lambda: credentials(Settings()).forget(name))
    console.print(f"principal {name} revoked", highlight=False)


# ---------------------------------------------------------------- admin bootstrap


class BootstrapClosed(RuntimeError):
    """Nothing to bootstrap: an admin exists (or this home is not the registry's)."""


def bootstrap_first_admin(settings: Settings, *, name: str = "admin", wait_s: float = 30.0) -> tuple[str, Path]:
    """Present the registry's one-time secret and store the first admin's token 0600; returns (token, path).
    Raises BootstrapClosed when there is nothing to bootstrap, RuntimeError when the registry is not there."""
    from services.registry.adapters.credentials import bootstrap_secret_path

    store = credentials(settings)
    if store.admin_token() is not None:
        raise BootstrapClosed(f"an admin token is already stored in {store.admin_token_path}")
    deadline = time.monotonic() + wait_s
    while True:  # `tunegate up` reports ready before the API listens; its URL file appears when it does
        try:
            settings.resolved_registry_url()
            break
        except RuntimeError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    secret_path = bootstrap_secret_path(settings)
    if not secret_path.is_file():
        raise BootstrapClosed(
            f"no bootstrap secret at {secret_path}: the registry writes one only while no admin exists (ask an "
            "admin for a principal, or run this on the registry's host with its TUNEGATE_HOME)"
        )
    client = open_client(settings, None)
    created = _call(
        lambda: client.bootstrap_admin(AdminBootstrap(name=name, secret=secret_path.read_text("ascii").strip()))
    )
    secret_path.unlink(missing_ok=True)
    return created.token, store.save_admin_token(created.token)


def bootstrap_after_up(settings: Settings, out: Console) -> None:
    """`tunegate up`: issue the first admin token once, on a registry that has none."""
    try:
        token, path = bootstrap_first_admin(settings)
    except BootstrapClosed:
        return
    except (RuntimeError, typer.Exit) as exc:
        out.print(f"[yellow]first admin not bootstrapped: {exc}; run `tunegate admin bootstrap`")
        return
    out.print(f"first admin 'admin' created; token (shown once): {token}", highlight=False, soft_wrap=True)
    out.print(f"saved {path} (0600): the CLI uses it when no --token or --as is given", highlight=False)


@admin_app.command("bootstrap")
def admin_bootstrap(
    name: Annotated[str, typer.Option(help="Name of the first admin.")] = "admin",
    as_json: JsonOption = False,
) -> None:
    """Create the first admin of a registry that has none, with the one-time secret the registry wrote under
    $TUNEGATE_HOME; shows the token once and stores it in $TUNEGATE_HOME/credentials/admin.token (0600)."""
    _guard(lambda: validate_name(name))
    settings = Settings()
    try:
        token, path = bootstrap_first_admin(settings, name=name, wait_s=5.0)
    except (BootstrapClosed, RuntimeError) as exc:
        raise fail(f"admin bootstrap refused: {exc}") from None
    if as_json:
        print(json.dumps({"name": name, "token": token, "stored": str(path)}))
        return
    console.print(f"first admin {name!r} created; token (shown once): {token}", highlight=False, soft_wrap=True)
    console.print(f"saved {path} (0600)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("advise")(advise_cmd)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(principals_app, name="principals")
    app.add_typer(admin_app, name="admin")
