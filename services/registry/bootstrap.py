"""Wiring: policy + rules -> RegistryCore -> event handlers, tables, HTTP API and the expiry timer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from services.registry.adapters import repository
from services.registry.adapters.http import RuntimeLike, serve
from services.registry.adapters.tables import METADATA
from services.registry.domain.policy import RiskRuleRegistry, load_policy
from services.registry.domain.states import JobState
from services.registry.handlers import build_handlers
from services.registry.workflow import SYSTEM_ACTOR, RegistryCore
from shared.config import Settings

if TYPE_CHECKING:
    from shared.bus.definition import ServiceDefinition

log = logging.getLogger("tunegate.registry")

EXPIRY_INTERVAL_S = 5.0


def build_core(settings: Settings, rules: RiskRuleRegistry | None = None) -> RegistryCore:
    """Policy from settings.registry_policy_path (or the bundled one); fails fast on a bad policy file."""
    registry = rules or RiskRuleRegistry.default()
    return RegistryCore(
        policy=load_policy(settings.registry_policy_path, registry),
        rules=registry,
        approval_ttl_s=settings.approval_ttl_s,
    )


async def expire_overdue(runtime: RuntimeLike, core: RegistryCore) -> list[str]:
    """One sweep: every awaiting_approval job past its deadline becomes expired (one transaction each, so
    a job that fails to expire does not hold the others back)."""
    with runtime.db.transaction() as session:
        due = core.overdue(session)
    expired = []
    for job_id in due:
        async with runtime.transaction(actor=SYSTEM_ACTOR, subject=job_id) as ctx:
            job = repository.require_job(ctx.db, job_id, with_history=True)
            ctx.trace = job.traceparent or ctx.trace
            # Another replica (or an approval racing the timer) may have moved it meanwhile.
            deadline = job.approval_expires_at
            if job.state != JobState.AWAITING_APPROVAL or deadline is None or deadline > core.clock():
                continue
            core.expire(ctx.db, ctx, job)
            expired.append(job_id)
    return expired


def expiry_timer(core: RegistryCore, interval_s: float = EXPIRY_INTERVAL_S) -> Callable[[RuntimeLike], Awaitable[None]]:
    async def run(runtime: RuntimeLike) -> None:
        while True:
            try:
                expired = await expire_overdue(runtime, core)
                if expired:
                    log.info("approval expired for %s", ", ".join(expired))
            except Exception:  # a failed sweep must not end the timer; the next one retries
                log.exception("approval expiry sweep failed")
            await asyncio.sleep(interval_s)

    return run


def build(settings: Settings) -> ServiceDefinition:
    from shared.bus.definition import ServiceDefinition

    core = build_core(settings)

    async def http_api(runtime: RuntimeLike) -> None:
        await serve(runtime, core)

    return ServiceDefinition(
        name="registry",
        handlers=build_handlers(core),
        metadata=[METADATA],
        background=[http_api, expiry_timer(core)],
    )
