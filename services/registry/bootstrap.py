"""Wiring from settings: policy -> Governance -> event handlers, tables, HTTP API and the timer (approval expiry,
erasure retirement after a grace period)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from services.evaluator.suites.registry import suite_names
from services.registry.adapters import outbox, repository
from services.registry.adapters.policy_file import load_policy
from services.registry.adapters.tables import METADATA
from services.registry.domain.governance import Governance
from services.registry.domain.policy import RiskRuleRegistry
from services.registry.domain.states import SYSTEM_ACTOR
from services.registry.entrypoints.http import RuntimeLike
from services.registry.entrypoints.serve import serve
from services.registry.erasure.service import retire_when_due
from services.registry.handlers import build_handlers
from shared.config import Settings
from shared.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    from shared.bus.definition import ServiceDefinition

log = logging.getLogger("tunegate.registry")

EXPIRY_INTERVAL_S = 5.0


def build_governance(settings: Settings, rules: RiskRuleRegistry | None = None) -> Governance:
    """Policy from settings.registry_policy_path (or the bundled one), suite names from the evaluator's
    suites.yaml; fails fast on a bad policy or suite file."""
    registry = rules or RiskRuleRegistry.default()
    return Governance(
        policy=load_policy(settings.registry_policy_path, registry),
        rules=registry,
        approval_ttl_s=settings.approval_ttl_s,
        evaluation_suites=frozenset(suite_names()),
    )


async def expire_overdue(runtime: RuntimeLike, governance: Governance) -> list[str]:
    """One sweep: every awaiting_approval job past its deadline becomes expired (one transaction each, so
    a job that fails to expire does not hold the others back)."""
    with runtime.db.transaction() as session:
        due = repository.overdue_job_ids(session, now=governance.now())
    expired = []
    for job_id in due:
        async with runtime.transaction(actor=SYSTEM_ACTOR, subject=job_id) as ctx:
            job = repository.require_job(ctx.db, job_id)
            ctx.trace = job.traceparent or ctx.trace
            # Another replica (or an approval racing the timer) may have moved it meanwhile.
            if not job.is_overdue(governance.now()):
                continue
            job.expire(governance.now())
            outbox.commit_job(ctx, job)
            expired.append(job_id)
    return expired


def expiry_timer(
    governance: Governance, interval_s: float = EXPIRY_INTERVAL_S
) -> Callable[[RuntimeLike], Awaitable[None]]:
    async def run(runtime: RuntimeLike) -> None:
        while True:
            try:
                expired = await expire_overdue(runtime, governance)
                if expired:
                    log.info("approval expired for %s", ", ".join(expired))
            except Exception:  # a failed sweep must not end the timer; the next one retries
                log.exception("approval expiry sweep failed")
            try:  # erasures whose retirement grace period ended (policy erasure.retirement_grace_hours)
                retired = await retire_when_due(runtime, governance)
                if retired:
                    log.info("erasure grace period over: retired the tainted versions of %s", ", ".join(retired))
            except Exception:
                log.exception("erasure retirement sweep failed")
            await asyncio.sleep(interval_s)

    return run


def build(settings: Settings) -> ServiceDefinition:
    from services.registry.adapters.principal_keys import RegisteredPrincipalKeys
    from shared.bus.definition import ServiceDefinition

    governance = build_governance(settings)

    async def http_api(runtime: RuntimeLike) -> None:
        await serve(runtime, governance)

    return ServiceDefinition(
        name="registry",
        handlers=build_handlers(governance, ArtifactStore(settings.home_dir / "artifacts")),
        metadata=[METADATA],
        background=[http_api, expiry_timer(governance)],
        principal_keys=RegisteredPrincipalKeys,
    )
