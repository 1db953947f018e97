"""Registry test helpers: a real SQLite database, a controllable clock, handlers driven directly with a
HandlerContext, and a fake ServiceRuntime whose transaction() collects the events it would publish."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from services.registry.adapters import repository
from services.registry.domain.principals import new_token
from services.registry.workflow import RegistryCore
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.events.catalog import spec_for_model
from shared.events.envelope import Envelope
from shared.events.payloads import ArtifactRef, DatasetScanned, JobRequested, JobSpec
from shared.storage.db import Database


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeRuntime:
    """The ServiceRuntime slice the registry uses: settings, db, transaction(); no Redis."""

    settings: Settings
    db: Database
    published: list[Envelope] = field(default_factory=list)

    @asynccontextmanager
    async def transaction(self, *, actor: str, subject: str | None = None) -> AsyncIterator[HandlerContext]:
        with self.db.transaction() as session:
            ctx = HandlerContext(
                producer="registry",
                default_actor=actor,
                default_subject=subject,
                session=session,
                settings=self.settings,
            )
            yield ctx
        self.published.extend(ctx.outgoing)  # only after commit, like the outbox

    async def deliver(self, handlers: dict[Any, Any], envelope: Envelope) -> list[Envelope]:
        """Run the registry's handler for one event in its own transaction; return what it emitted."""
        with self.db.transaction() as session:
            ctx = HandlerContext(
                producer="registry",
                default_actor="system:registry",
                envelope=envelope,
                session=session,
                settings=self.settings,
                causation_id=envelope.event_id,
            )
            by_type = {spec_for_model(model).type: handler for model, handler in handlers.items()}
            await by_type[envelope.type](envelope.data, ctx)
        self.published.extend(ctx.outgoing)
        return ctx.outgoing

    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.published if e.type == event_type]


@dataclass
class World:
    settings: Settings
    runtime: FakeRuntime
    core: RegistryCore
    clock: Clock
    handlers: dict[str, Any]
    client: TestClient

    def principal(self, name: str, *roles: str) -> str:
        token = new_token()
        with self.runtime.db.transaction() as session:
            repository.add_principal(
                session, name=name, roles=list(roles), token=token, created_by="test", now=self.clock()
            )
        return token

    async def submit(self, spec: JobSpec, job_id: str = "job_1") -> list[Envelope]:
        envelope = Envelope(
            type="job.requested",
            producer="cli",
            actor=spec.requester,
            subject=job_id,
            payload=JobRequested(job_id=job_id, spec=spec).model_dump(mode="json"),
        )
        return await self.runtime.deliver(self.handlers, envelope)

    async def scanned(
        self, job_id: str = "job_1", verdict: str = "clean", source_sha256: str | None = None, **extra: Any
    ) -> list[Envelope]:
        source = ArtifactRef(uri="file:///data/train.jsonl", sha256=source_sha256 or sha("source"))
        payload = DatasetScanned(
            job_id=job_id,
            verdict=verdict,  # type: ignore[arg-type]
            dataset=ArtifactRef(uri=f"cas://sha256/{sha('redacted')}", sha256=sha("redacted"))
            if verdict == "redacted"
            else source,
            source=source,
            fingerprint=sha("fingerprint"),
            record_count=3200,
            report=ArtifactRef(uri=f"cas://sha256/{sha('report')}", sha256=sha("report")),
            totals={"EMAIL_ADDRESS": {"redacted": 12}},
            **extra,
        )
        envelope = Envelope(
            type="dataset.scanned",
            producer="scanner",
            actor="system:scanner",
            subject=job_id,
            payload=payload.model_dump(mode="json"),
        )
        return await self.runtime.deliver(self.handlers, envelope)

    def decide(self, job_id: str, token: str | None, **body: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post(f"/jobs/{job_id}/approvals", json=body, headers=headers)

    def state(self, job_id: str = "job_1") -> str:
        with self.runtime.db.transaction() as session:
            return repository.require_job(session, job_id).state


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_spec(**use_case: Any) -> JobSpec:
    base: dict[str, Any] = {
        "name": "ticket-triage",
        "problem": "Agents re-key tickets by hand.",
        "why_not_prompting": "Prompts drift from the schema.",
        "why_not_rag": "Nothing changes or needs citing.",
        "data_description": "Past tickets, scanned and redacted.",
        "risks": "Personal data in tickets; mis-routing.",
        "needs_consistent_format": True,
        "example_count": 5000,
    }
    base.update(use_case)
    return JobSpec.model_validate(
        {
            "requester": "alice",
            "use_case": base,
            "base_model": "tiny",
            "dataset": {"uri": "file:///data/train.jsonl"},
            "hyperparameters": {"seed": 3, "max_steps": 10},
        }
    )
