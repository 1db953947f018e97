"""`tunegate` commands of the registry: submit, jobs list|show|cancel, approve, reject, advise; `register`
adds those of eval_cli.py (eval run|show) and principals_cli.py (principals create|rotate|revoke|list,
admin bootstrap).

Every command but `advise` and `submit` is a client of the registry API, authenticated by a bearer token
(cli_common.resolve_token says which). `submit --as NAME` signs
`job.requested` with NAME's key ($TUNEGATE_HOME/credentials/NAME/signing.key) and publishes it on the bus.

Start-up matters for a CLI: fastapi, sqlalchemy and httpx are imported inside the commands that use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from pydantic import ValidationError
from rich.table import Table

from services.registry.domain.principals import validate_name
from services.registry.domain.states import STATE_NAMES, JobState
from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, credentials, fail, guard
from services.registry.entrypoints.job_views import print_advice, print_job, print_scan
from services.registry.schemas import (
    ApprovalRequest,
    ApprovalResult,
    CancelRequest,
)
from shared.config import Settings
from shared.events.payloads import MethodSpec, UseCase
from shared.ids import validate_job_id

if TYPE_CHECKING:
    from services.registry.adapters.client import RegistryClient
    from services.registry.domain.advice import Advice
    from services.registry.domain.intake import TierDecision

jobs_app = typer.Typer(help="Fine-tuning jobs held by the registry.", no_args_is_help=True)


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

    call(probe)


def _option_name(loc: tuple[Any, ...]) -> str:
    """A UseCase field as the `advise` flag that sets it (use_case.knowledge_changes -> --knowledge-changes)."""
    return "--" + "-".join(str(part) for part in loc).replace("_", "-")


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

    from services.registry.jobfile import JobFileError, load_job_file
    from shared.bus.publisher import publish
    from shared.events.envelope import Envelope
    from shared.events.payloads import JobRequested
    from shared.ids import UnsafeIdError, new_job_id, validate_job_id
    from shared.security.signing import EnvelopeSigner, principal_identity

    settings = Settings()
    guard(lambda: validate_name(principal))
    signer = EnvelopeSigner(principal_identity(principal), guard(lambda: credentials(settings).signing_key(principal)))
    if job_id is not None:
        try:
            validate_job_id(job_id)
        except UnsafeIdError as exc:
            raise fail(f"--job-id: {exc}", code=2) from None
        check_job_id_free(common.open_client(settings, common.resolve_token(settings, token, principal)), job_id)
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
        [published] = publish(settings, [envelope], signer)
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
    client = common.client_for(token, principal)
    jobs = call(lambda: client.list_jobs(state=state))
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


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    principal: Annotated[str | None, typer.Option("--as", help="Read as this principal (its stored token).")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one job: tier, licence, advice, scan summary, approvals and its history with actors and times."""
    client = common.client_for(token, principal)
    job = call(lambda: client.get_job(job_id))
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
    call(lambda: validate_job_id(job_id))  # a bad id is the error, before looking for credentials
    client = common.client_for(token, principal)
    result = call(lambda: client.cancel(job_id, CancelRequest(reason=reason)))
    if as_json:
        print(result.model_dump_json(indent=2))
    elif result.training_cancel_requested:
        console.print(f"job {job_id}: the trainer was asked to stop (training.cancel.requested)", highlight=False)
    else:
        console.print(f"job {job_id} is now {result.state}", highlight=False)


# ---------------------------------------------------------------- approve | reject


def _decide(job_id: str, principal: str, token: str | None, request: ApprovalRequest) -> ApprovalResult:
    call(lambda: validate_job_id(job_id))  # a bad id is the error, before looking for credentials
    client = common.client_for(token, principal)
    job = call(lambda: client.get_job(job_id))
    # Approvers decide knowing what the scanner found and what the advice said.
    print_advice(job.advice)
    print_scan(job.scan_summary)
    return call(lambda: client.decide(job_id, request))


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


def advise_use_case(settings: Settings, use_case: UseCase, method_kind: str = "sft") -> tuple[TierDecision, Advice]:
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
        method_kind=method_kind,
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
    method: Annotated[
        str, typer.Option(help="The method in mind: sft, dpo, cpt, reward_model, rlhf (rlhf: when it beats DPO).")
    ] = "sft",
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
        from shared.validation import describe_validation_error

        raise fail(describe_validation_error(exc, location=_option_name), code=2) from None
    from services.registry.domain.policy import PolicyError

    kinds = get_args(MethodSpec.model_fields["kind"].annotation)
    if method not in kinds:
        raise fail(f"--method: {method!r} is not a method ({', '.join(kinds)})", code=2)
    try:
        tier, advice = advise_use_case(Settings(), use_case, method)
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


def register(app: typer.Typer) -> None:
    from services.registry.entrypoints.api_keys_cli import api_keys_app
    from services.registry.entrypoints.erasure_cli import erase, erasure_app
    from services.registry.entrypoints.eval_cli import eval_app
    from services.registry.entrypoints.evidence_cli import report
    from services.registry.entrypoints.incidents_cli import incidents_app
    from services.registry.entrypoints.models_cli import models_app
    from services.registry.entrypoints.principals_cli import admin_app, principals_app

    app.command("submit")(submit)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("advise")(advise_cmd)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(eval_app, name="eval")  # services/registry/entrypoints/eval_cli.py
    app.add_typer(principals_app, name="principals")
    app.add_typer(admin_app, name="admin")
    app.add_typer(api_keys_app, name="keys")  # services/registry/entrypoints/api_keys_cli.py
    app.add_typer(models_app, name="models")  # services/registry/entrypoints/models_cli.py
    app.command("erase")(erase)  # services/registry/entrypoints/erasure_cli.py
    app.add_typer(erasure_app, name="erasure")
    app.add_typer(incidents_app, name="incidents")  # services/registry/entrypoints/incidents_cli.py
    app.command("report")(report)  # services/registry/entrypoints/evidence_cli.py
