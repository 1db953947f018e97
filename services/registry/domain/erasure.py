"""The Erasure aggregate: one data subject's right to erasure (GDPR Art. 17), followed through lineage from the
datasets that held the subject's records to the model versions trained on them and their replacements.

Steps, in order: located (datasets and versions found through the scanner's subject indexes) -> tainted ->
retired (at once, or scheduled when policy grants a grace period) -> retraining submitted -> replacement
deployed under every alias a tainted version served -> the scanner's stored copies deleted (the scanner says
so; any order with the steps before) -> certificate issued. Each step is recorded with its
status, moment and the event that announced it; every change records its event in the same act, so the
repository and the outbox commit them together.

The subject id itself is never stored: only `subject_key`, a keyed hash (HMAC with the registry's erasure
key), which lets a second request for the same subject be recognised and nothing else. Lineage matching is
pure: `locate` and `affected_versions` take what the adapters read and decide."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.registry.domain import events
from services.registry.domain.access import ERASE, authorise
from services.registry.domain.errors import Conflict, InvalidRequest
from services.registry.domain.events import EventRecorder
from services.registry.domain.principals import Principal

STEPS = (
    "located", "tainted", "retired", "retraining_submitted", "replacement_deployed", "artefacts_deleted",
    "certificate_issued",
)
ERASURE_ID = re.compile(r"^er-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_REASON_CHARS = 4_000
MAX_SUBJECT_ID_CHARS = 1_000


def validate_erasure_id(value: str) -> str:
    if not ERASURE_ID.fullmatch(value):
        raise InvalidRequest(f"erasure id {value[:100]!r}: expected er-<uuid> (as `tunegate erasure list` shows)")
    return value


def check_subject_id(value: str) -> str:
    if not value.strip():
        raise InvalidRequest("subject: the data subject's id is empty")
    if len(value) > MAX_SUBJECT_ID_CHARS:
        raise InvalidRequest(f"subject: at most {MAX_SUBJECT_ID_CHARS} characters")
    return value


# ---------------------------------------------------------------- lineage (pure)


@dataclass(frozen=True)
class ScannedDataset:
    """One scan the registry recorded for a job: its fingerprint and subject index (subject hash -> records)."""

    job_id: str
    fingerprint: str
    subjects: Mapping[str, list[str]]


@dataclass(frozen=True)
class DatasetHit:
    job_id: str
    fingerprint: str
    record_hashes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "fingerprint": self.fingerprint, "record_hashes": list(self.record_hashes)}


@dataclass(frozen=True)
class VersionFacts:
    """What lineage needs of a model version."""

    id: str
    job_id: str
    dataset_fingerprints: tuple[str, ...]
    state: str
    alias: str | None
    # Versions whose weights or rewards shaped this one: an RLHF policy's starting SFT version and its reward
    # model. What they learnt from a subject's records is in this version too, whatever its own datasets hold.
    derived_from: tuple[str, ...] = ()


def locate(subject_sha256: str, scanned: Iterable[ScannedDataset]) -> list[DatasetHit]:
    """Every scanned dataset whose subject index lists the subject, with the hashes of its records there."""
    hits = []
    for dataset in scanned:
        records = dataset.subjects.get(subject_sha256)
        if records:
            hits.append(DatasetHit(dataset.job_id, dataset.fingerprint, tuple(sorted(set(records)))))
    return sorted(hits, key=lambda h: (h.job_id, h.fingerprint))


def affected_versions(hits: Iterable[DatasetHit], versions: Iterable[VersionFacts]) -> list[VersionFacts]:
    """Versions trained on a located dataset (by fingerprint, the recorded lineage, or by the job that scanned
    it), and every version derived from one of those, however many generations down (`derived_from`)."""
    fingerprints = {h.fingerprint for h in hits}
    jobs = {h.job_id for h in hits}
    versions = list(versions)
    affected = {v.id for v in versions if jobs & {v.job_id} or fingerprints & set(v.dataset_fingerprints)}
    grown = True
    while grown:  # to a fixed point: a policy started from a policy started from a tainted version
        derived = {v.id for v in versions if v.id not in affected and affected & set(v.derived_from)}
        affected |= derived
        grown = bool(derived)
    return sorted((v for v in versions if v.id in affected), key=lambda v: v.id)


# ---------------------------------------------------------------- the aggregate


@dataclass
class Step:
    name: str
    status: str
    at: datetime
    detail: str
    event_id: str
    due: datetime | None = None


@dataclass(kw_only=True, eq=False)
class Erasure(EventRecorder):
    id: str
    subject_key: str
    reason: str
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    datasets: list[DatasetHit] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    """Tainted model versions: trained on a located dataset."""
    served: dict[str, str] = field(default_factory=dict)
    """alias -> the tainted version it served when the erasure was located (each needs a replacement)."""
    replacements: dict[str, str] = field(default_factory=dict)
    retire_due: datetime | None = None
    certificate: dict[str, Any] | None = None
    steps: list[Step] = field(default_factory=list)
    version: int = 0

    @classmethod
    def request(
        cls, erasure_id: str, *, subject_key: str, reason: str, by: Principal, now: datetime
    ) -> Erasure:
        authorise(by, ERASE, "requesting an erasure")
        text = reason.strip()
        if not text:
            raise InvalidRequest("reason: an erasure needs a reason (the request's reference, the Art. 17 ground)")
        if len(text) > MAX_REASON_CHARS:
            raise InvalidRequest(f"reason: at most {MAX_REASON_CHARS} characters")
        erasure = cls(
            id=validate_erasure_id(erasure_id), subject_key=subject_key, reason=text, requested_by=by.name,
            requested_at=now, updated_at=now,
        )
        erasure._record(
            events.ErasureRequested(subject=erasure.id, actor=by.name, subject_key=subject_key, reason=text)
        )
        return erasure

    # ------------------------------------------------------------ state

    def step(self, name: str) -> Step | None:
        found = [s for s in self.steps if s.name == name]
        return found[-1] if found else None

    def done(self, name: str) -> bool:
        step = self.step(name)
        return step is not None and step.status in ("done", "not_needed")

    @property
    def completed(self) -> bool:
        return self.done("certificate_issued")

    @property
    def state(self) -> str:
        unfinished = [name for name in STEPS if not self.done(name)]
        return "completed" if not unfinished else f"awaiting {unfinished[0]}"

    def _progress(self, name: str, status: str, *, actor: str, now: datetime, detail: str = "",
                  due: datetime | None = None, with_lineage: bool = False, versions: list[str] | None = None) -> None:
        event = events.ErasureProgressed(
            subject=self.id, actor=actor, step=name, status=status,
            datasets=[h.as_dict() for h in self.datasets] if with_lineage else [],
            versions=list(self.versions if versions is None else versions), detail=detail, due=due,
        )
        self.steps.append(Step(name, status, now, detail, event.event_id, due))
        self.updated_at = now
        self._record(event)

    # ------------------------------------------------------------ lineage

    def record_lineage(
        self, hits: list[DatasetHit], versions: list[VersionFacts], *, grace: timedelta, now: datetime
    ) -> list[str]:
        """Located and tainted; returns the versions to retire now (none when policy grants a grace period)."""
        if self.steps:
            raise Conflict(f"erasure {self.id} was already located")
        actor = self.requested_by
        self.datasets = list(hits)
        self.versions = [v.id for v in versions]
        self.served = {v.alias: v.id for v in versions if v.state == "deployed" and v.alias}
        where = f"{len(hits)} dataset(s), {len(versions)} model version(s)"
        self._progress("located", "done", actor=actor, now=now, detail=where, with_lineage=True)
        if not hits:
            self._progress("artefacts_deleted", "not_needed", actor=actor, now=now, versions=[],
                           detail="no stored dataset held the subject's records")
        live = [v.id for v in versions if v.state != "retired"]
        if not versions:
            for name in ("tainted", "retired", "retraining_submitted", "replacement_deployed"):
                self._progress(name, "not_needed", actor=actor, now=now, detail="no model version used the records",
                               versions=[])
            return []
        self._progress("tainted", "done", actor=actor, now=now, detail="trained on the subject's records")
        if not live:
            self._progress("retired", "not_needed", actor=actor, now=now, detail="every tainted version was retired")
            self._nothing_to_replace(actor, now)
            return []
        if grace > timedelta(0):
            self.retire_due = now + grace
            self._progress("retired", "scheduled", actor=actor, now=now, due=self.retire_due, versions=live,
                           detail=f"policy grants a grace period of {grace}")
            return []
        return live

    def retirement_due(self, now: datetime) -> bool:
        step = self.step("retired")
        scheduled = step is not None and step.status == "scheduled"
        return scheduled and self.retire_due is not None and now >= self.retire_due

    def record_retired(
        self, version_ids: list[str], *, actor: str, now: datetime, deleted: tuple[str, ...] = ()
    ) -> None:
        """`deleted`: the sha256 of the retired versions' adapters and held-out splits removed from the store."""
        gone = f"; deleted their adapters and held-out splits: {', '.join(deleted)}" if deleted else ""
        self._progress("retired", "done", actor=actor, now=now, versions=version_ids,
                       detail=f"model.retired published for each (the gateway stops serving){gone}")
        if not self.served:
            self._nothing_to_replace(actor, now)

    def _nothing_to_replace(self, actor: str, now: datetime) -> None:
        self._progress("retraining_submitted", "not_needed", actor=actor, now=now, versions=[],
                       detail="no tainted version was deployed under an alias")
        self._progress("replacement_deployed", "not_needed", actor=actor, now=now, versions=[],
                       detail="no alias to serve again")

    def record_retraining(self, job_ids: list[str], *, actor: str, now: datetime) -> None:
        self._progress("retraining_submitted", "done", actor=actor, now=now, versions=[],
                       detail="retraining job(s) " + ", ".join(job_ids))

    def record_replacement(
        self, alias: str, version_id: str, job_id: str, fingerprints: list[str], *, actor: str, now: datetime
    ) -> bool:
        """A version deployed under an alias a tainted version served; True when it counts as its replacement
        (not tainted, not trained on a located dataset) and was not known yet."""
        located = {h.fingerprint for h in self.datasets}
        if alias not in self.served or alias in self.replacements or version_id in self.versions:
            return False
        if located & set(fingerprints):
            return False
        if not self.done("retraining_submitted"):
            self.record_retraining([job_id], actor=actor, now=now)
        self.replacements[alias] = version_id
        missing = sorted(set(self.served) - set(self.replacements))
        status = "pending" if missing else "done"
        detail = f"{version_id} serves {alias!r}" + (f"; still waiting for {', '.join(missing)}" if missing else "")
        self._progress("replacement_deployed", status, actor=actor, now=now, versions=[version_id], detail=detail)
        return True

    def record_deleted(self, job_ids: list[str], digests: list[str], *, actor: str, now: datetime) -> bool:
        """The scanner deleted its copies of the located datasets; False when already recorded."""
        if self.done("artefacts_deleted"):
            return False
        located = sorted({h.job_id for h in self.datasets})
        if sorted(set(job_ids)) != located:
            raise Conflict(f"erasure {self.id}: the scanner deleted copies of jobs {sorted(job_ids)}, but the "
                           f"subject was located in jobs {located}")
        self._progress("artefacts_deleted", "done", actor=actor, now=now, versions=[],
                       detail=f"scanner deleted {len(digests)} stored copies: {', '.join(digests) or 'none left'}")
        return True

    @property
    def ready_for_certificate(self) -> bool:
        return all(self.done(name) for name in STEPS[:-1]) and not self.completed

    def issue_certificate(
        self, certificate: dict[str, Any], sha256: str, *, actor: str, now: datetime
    ) -> events.ErasureCompleted:
        """Returns the completion event that names the certificate's sha256: its id and payload anchor the
        certificate in the audit ledger (services/registry/erasure/certificate.py)."""
        if not self.ready_for_certificate:
            raise Conflict(f"erasure {self.id} is {self.state}; its certificate is issued after every step is done")
        self.certificate = certificate
        self._progress("certificate_issued", "done", actor=actor, now=now, versions=[],
                       detail=f"certificate sha256 {sha256}")
        completed = events.ErasureCompleted(
            subject=self.id, actor=actor, affected_datasets=sorted({h.fingerprint for h in self.datasets}),
            affected_versions=list(self.versions), replacements=dict(self.replacements),
            certificate_sha256=sha256,
        )
        self._record(completed)
        return completed
