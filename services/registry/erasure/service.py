"""Erasure use cases, shared by the HTTP API, the CLI (through the API) and the registry's timer: request an
erasure (locate, taint, retire or schedule, submit retraining), retire when a grace period ends, and note a
deployment that replaces a tainted version (then issue the certificate).

Each runs in one transaction: the erasure, the versions and aliases it changes, the retraining jobs it
submits and every event they record commit together or not at all."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from services.registry.adapters import erasure_repository, model_repository, outbox, repository
from services.registry.domain import deployments
from services.registry.domain.erasure import (
    Erasure,
    affected_versions,
    check_subject_id,
    locate,
)
from services.registry.domain.errors import Conflict
from services.registry.domain.governance import Governance
from services.registry.domain.job import Job
from services.registry.domain.model_version import ModelVersion
from services.registry.domain.principals import Principal
from services.registry.erasure import certificate, lineage
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.ids import new_job_id, uuid7
from shared.security.signing import KeyDirectory
from shared.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    from services.registry.entrypoints.http import RuntimeLike

log = logging.getLogger("tunegate.registry.erasure")
SIGNER = "registry"


def _store(runtime: RuntimeLike) -> ArtifactStore:
    return ArtifactStore(runtime.settings.home_dir / "artifacts")


def new_erasure_id() -> str:
    return f"er-{uuid7()}"


async def request_erasure(
    runtime: RuntimeLike, governance: Governance, principal: Principal, *, subject_id: str, reason: str
) -> Erasure:
    subject = check_subject_id(subject_id)
    key = lineage.subject_key(runtime.settings, subject)
    erasure_id = new_erasure_id()
    now = governance.now()
    store = _store(runtime)
    async with runtime.transaction(actor=principal.name, subject=erasure_id) as ctx:
        pending = erasure_repository.open_for_subject(ctx.db, key)
        if pending is not None:
            raise Conflict(f"erasure {pending.id} for this subject is still open ({pending.state}); follow it with "
                           f"`tunegate erasure show {pending.id}`")
        erasure = Erasure.request(erasure_id, subject_key=key, reason=reason, by=principal, now=now)
        hits = locate(lineage.scanner_subject_hash(subject), lineage.scanned_datasets(ctx.db, store))
        tainted = affected_versions(hits, lineage.version_facts(ctx.db))
        grace = timedelta(hours=governance.policy.erasure.retirement_grace_hours)
        to_retire = erasure.record_lineage(hits, tainted, grace=grace, now=now)
        if to_retire:
            _retire(ctx, store, erasure, to_retire, now)
        if erasure.served:
            _submit_retraining(ctx, governance, store, erasure, now)
        _certify_if_ready(ctx, store, erasure, now)
        outbox.commit_erasure(ctx, erasure)
    log.info("erasure %s: %s", erasure.id, erasure.state)
    return erasure


def _retire(
    ctx: HandlerContext, store: ArtifactStore, erasure: Erasure, version_ids: list[str], now: datetime
) -> None:
    """Retire each version and delete what of the subject it carries: its adapter (trained on the records, it
    may have memorised them) and its job's held-out split (records of the same dataset)."""
    actor = erasure.requested_by
    why = f"erasure {erasure.id}: trained on records of a data subject who asked for erasure (GDPR Art. 17)"
    digests: list[str] = []
    for version_id in version_ids:
        version = model_repository.require_version(ctx.db, version_id)
        if version.state.value == "retired":
            continue
        served = version.retire(by=actor, reason=why, now=now)
        outbox.commit_version(ctx, version)
        if served is not None:
            alias = model_repository.require_alias(ctx.db, served)
            deployments.release(alias, version, by=actor, now=now)
            outbox.commit_alias(ctx, alias)
        held_out = (repository.require_job(ctx.db, version.job_id).training_result or {}).get("held_out") or {}
        digests += [d for d in (version.artifact.get("sha256"), held_out.get("sha256")) if d]
    deleted = tuple(d for d in sorted(set(digests)) if store.delete(d))
    erasure.record_retired(version_ids, actor=actor, now=now, deleted=deleted)


def _submit_retraining(
    ctx: HandlerContext, governance: Governance, store: ArtifactStore, erasure: Erasure, now: datetime
) -> None:
    """One job per job a served tainted version was trained by: the same spec, on the stored copy it trained on
    minus the subject's records. It goes through the whole gate (scan, approvals, training, evaluation)."""
    drop: dict[str, set[str]] = {}
    for version_id in sorted(set(erasure.served.values())):
        version = model_repository.require_version(ctx.db, version_id)
        for hit in erasure.datasets:
            if hit.job_id == version.job_id or hit.fingerprint in version.dataset_fingerprints:
                drop.setdefault(version.job_id, set()).update(hit.record_hashes)
    submitted = []
    for job_id, records in sorted(drop.items()):
        original = repository.require_job(ctx.db, job_id)
        if original.training_dataset is None:
            raise Conflict(f"job {original.id} has no trainable dataset on record; cannot retrain without it")
        cleaned, removed = lineage.without_records(
            store, original.training_dataset, records, f"the dataset of job {original.id}"
        )
        spec = original.spec.model_copy(
            update={"dataset": original.spec.dataset.model_copy(
                update={"uri": cleaned.uri, "sha256": cleaned.sha256, "manifest_uri": _manifest_uri(original)}
            )}
        )
        job = Job.request(
            job_id=new_job_id(), spec=spec, requester=original.requester,
            intake=governance.intake(spec, base_is_directory=_base_is_directory(spec.base_model)), now=now,
            traceparent=original.traceparent,
        )
        outbox.commit_job(ctx, job)
        submitted.append(f"{job.id} (from {original.id}, {removed} record(s) removed)")
    erasure.record_retraining(submitted, actor=erasure.requested_by, now=now)


def _base_is_directory(base_model: str) -> bool:
    return Path(base_model).expanduser().is_dir()


def _manifest_uri(job: Job) -> str | None:
    """The original manifest, named explicitly: a content-addressed copy has no manifest beside it."""
    from shared.datasets.reference import DatasetRef

    if job.spec.dataset.manifest_uri:
        return job.spec.dataset.manifest_uri
    candidates = DatasetRef.parse(job.spec.dataset.uri).manifest_candidates()
    return candidates[0].uri if candidates else None


def note_deployment(
    ctx: HandlerContext, runtime: RuntimeLike, version: ModelVersion, alias: str, by: str, now: datetime
) -> None:
    """Called in the deploy transaction: a version deployed under an alias an open erasure's tainted version
    served may be its replacement; the last replacement issues the certificate."""
    store = _store(runtime)
    for erasure in erasure_repository.open_erasures(ctx.db):
        if version.id in erasure.versions:
            raise Conflict(f"model version {version.id} is tainted by erasure {erasure.id} (trained on an erased "
                           "subject's records); it cannot be deployed")
        if erasure.record_replacement(alias, version.id, version.job_id, list(version.dataset_fingerprints),
                                      actor=by, now=now):
            _certify_if_ready(ctx, store, erasure, now)
            outbox.commit_erasure(ctx, erasure)


async def retire_when_due(runtime: RuntimeLike, governance: Governance) -> list[str]:
    """The timer's sweep: erasures whose grace period ended retire their tainted versions now."""
    now = governance.now()
    done = []
    with runtime.db.transaction() as session:
        due = [e.id for e in erasure_repository.open_erasures(session) if e.retirement_due(now)]
    for erasure_id in due:
        async with runtime.transaction(actor="system:registry", subject=erasure_id) as ctx:
            erasure = erasure_repository.require_erasure(ctx.db, erasure_id)
            _retire(ctx, _store(runtime), erasure, _live(ctx, erasure), now)
            if erasure.served and not erasure.done("retraining_submitted"):
                _submit_retraining(ctx, governance, _store(runtime), erasure, now)
            _certify_if_ready(ctx, _store(runtime), erasure, now)
            outbox.commit_erasure(ctx, erasure)
        done.append(erasure_id)
    return done


def _live(ctx: HandlerContext, erasure: Erasure) -> list[str]:
    return [v for v in erasure.versions if model_repository.require_version(ctx.db, v).state.value != "retired"]


def _settings(ctx: HandlerContext) -> Settings:
    if ctx.settings is None:
        raise RuntimeError("an erasure needs the service's settings in its unit of work (keys, artefact store)")
    return ctx.settings


def note_shredded(ctx: HandlerContext, erasure_id: str, job_ids: list[str], digests: list[str], now: datetime) -> None:
    """The scanner deleted its stored copies (dataset.erasure.shredded): the last step before the certificate."""
    erasure = erasure_repository.load_erasure(ctx.db, erasure_id)
    if erasure is None:
        log.warning("dataset.erasure.shredded for unknown erasure %s: skipped", erasure_id)
        return
    if erasure.record_deleted(job_ids, digests, actor=ctx.default_actor, now=now):
        _certify_if_ready(ctx, ArtifactStore(_settings(ctx).home_dir / "artifacts"), erasure, now)
        outbox.commit_erasure(ctx, erasure)


def _certify_if_ready(ctx: HandlerContext, store: ArtifactStore, erasure: Erasure, now: datetime) -> None:
    if not erasure.ready_for_certificate:
        return
    replacements = []
    for alias, version_id in sorted(erasure.replacements.items()):
        version = model_repository.require_version(ctx.db, version_id)
        job = repository.require_job(ctx.db, version.job_id)
        if job.training_dataset is None or job.data_fingerprint is None:
            raise Conflict(f"replacement {version_id}: its job {job.id} has no dataset on record")
        hashes = lineage.record_hashes(store, job.training_dataset, job.data_fingerprint,
                                       f"the dataset of replacement {version_id}")
        replacements.append(certificate.Replacement(alias, version_id, job.id, job.data_fingerprint, hashes))
    key = KeyDirectory(_settings(ctx).keys_dir).signer(SIGNER).private_key
    signed = certificate.sign(certificate.build(erasure, replacements, issued_at=now.isoformat()), key, SIGNER)
    problems = certificate.verify(signed, key.public_key())
    if problems:  # e.g. a replacement dataset that still holds an erased record: never certify that
        raise Conflict(f"erasure {erasure.id}: the certificate would not verify: {'; '.join(problems)}")
    completed = erasure.issue_certificate(signed, certificate.digest(signed), actor=erasure.requested_by, now=now)
    # The event exactly as the outbox publishes it: the ledger records its payload's hash, which the verifier
    # recomputes from the certificate's copy.
    _, payload = outbox.to_wire(completed)
    erasure.certificate = certificate.with_completion(signed, completed.event_id, payload.model_dump(mode="json"))
