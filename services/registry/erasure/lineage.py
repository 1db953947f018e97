"""What lineage reads: the scanner's subject indexes and dataset copies, through the references the registry
recorded with each job's scan summary (handlers.scan_result), from the shared artefact store.

Every read is checked against the sha256 on record, so a swapped index or dataset is an error, never a
silent miss. The subject's hash here is the scanner's (sha256 of the subject field's value,
services/scanner/engine/records.py); it is computed when a request arrives and never stored."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.registry.adapters.tables import JobRow, ModelVersionRow
from services.registry.domain.erasure import ScannedDataset, VersionFacts
from services.registry.domain.errors import Conflict
from shared.config import Settings
from shared.events.payloads import ArtifactRef
from shared.merkle import merkle_root
from shared.security.keys import load_or_create_secret
from shared.storage.artifacts import ArtifactStore

MAX_SUBJECT_INDEX_BYTES = 512 * 1024 * 1024
ERASURE_KEY_FILE = "registry-erasure.key"


def scanner_subject_hash(subject_id: str) -> str:
    """The key the scanner's subject index uses for a subject (its records.py computes the same)."""
    return hashlib.sha256(subject_id.encode("utf-8")).hexdigest()


def subject_key(settings: Settings, subject_id: str) -> str:
    """The only form in which the registry keeps a subject: HMAC-SHA256 under its erasure key (0600). The key
    lives in $TUNEGATE_HOME/keys beside the scanner's redaction key, not in the read-only mounted keys: a
    replaced key would make past erasures unrecognisable, so it is kept (and backed up) with the data."""
    key = load_or_create_secret(settings.path("keys", ERASURE_KEY_FILE), what="erasure key")
    return hmac.new(key, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()


def _verified(store: ArtifactStore, ref: dict[str, object], what: str) -> Path:
    try:
        return store.verify(ArtifactRef.model_validate(ref))
    except FileNotFoundError:
        raise Conflict(f"{what} ({ref.get('uri')}) is not in the artefact store; lineage cannot be followed") from None
    except ValueError as exc:
        raise Conflict(f"{what} does not match the hash on record: {exc}") from None


def read_subject_index(store: ArtifactStore, ref: dict[str, object], job_id: str) -> dict[str, list[str]]:
    path = _verified(store, ref, f"the subject index of job {job_id}")
    if path.stat().st_size > MAX_SUBJECT_INDEX_BYTES:
        raise Conflict(f"the subject index of job {job_id} is over {MAX_SUBJECT_INDEX_BYTES} bytes")
    document = json.loads(path.read_bytes())
    if document.get("schema") != "tunegate.subject-index/1":
        raise Conflict(f"the subject index of job {job_id} has schema {document.get('schema')!r}")
    return dict(document["subjects"])


def scanned_datasets(session: Session, store: ArtifactStore) -> Iterator[ScannedDataset]:
    """Every job whose scan recorded a subject index (manifest with a subject_field), one at a time."""
    rows = session.execute(select(JobRow.id, JobRow.scan_summary).where(JobRow.scan_summary.is_not(None)))
    for job_id, summary in rows:
        ref = (summary or {}).get("subject_index")
        if ref and summary.get("fingerprint"):
            yield ScannedDataset(job_id, summary["fingerprint"], read_subject_index(store, ref, job_id))


def derived_from(job_spec: dict[str, object] | None) -> tuple[str, ...]:
    """The versions a job's model was built from besides its datasets: an RLHF job's starting SFT version and
    its reward model (method.rlhf)."""
    method = (job_spec or {}).get("method") or {}
    rlhf = (method.get("rlhf") if isinstance(method, dict) else None) or {}
    if not isinstance(rlhf, dict):
        return ()
    return tuple(str(rlhf[key]) for key in ("policy_version", "reward_model_version") if rlhf.get(key))


def version_facts(session: Session) -> list[VersionFacts]:
    rows = session.execute(select(ModelVersionRow, JobRow.spec).outerjoin(JobRow, JobRow.id == ModelVersionRow.job_id))
    return [
        VersionFacts(r.id, r.job_id, tuple(r.dataset_fingerprints or ()), r.state, r.alias, derived_from(spec))
        for r, spec in rows
    ]


def dataset_lines(path: Path) -> Iterator[bytes]:
    """The records of a JSONL dataset as the scanner hashed them: each line without its newline."""
    with path.open("rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\n")
            if stripped.strip():
                yield stripped


def record_hashes(store: ArtifactStore, ref: dict[str, object], fingerprint: str, what: str) -> list[str]:
    """The record hashes of a stored dataset, in order, checked to be exactly those its fingerprint (the Merkle
    root the scanner computed) commits to."""
    path = _verified(store, ref, what)
    hashes = [hashlib.sha256(line).digest() for line in dataset_lines(path)]
    if merkle_root(hashes).hex() != fingerprint:
        raise Conflict(f"{what}: its records do not rebuild fingerprint {fingerprint}; cannot prove what it holds")
    return [h.hex() for h in hashes]


def without_records(store: ArtifactStore, ref: dict[str, object], drop: set[str], what: str) -> tuple[ArtifactRef, int]:
    """A copy of a stored dataset minus the records whose hashes are in `drop`; returns it and how many went."""
    path = _verified(store, ref, what)
    kept: list[bytes] = []
    removed = 0
    for line in dataset_lines(path):
        if hashlib.sha256(line).hexdigest() in drop:
            removed += 1
        else:
            kept.append(line + b"\n")
    return store.put_bytes(b"".join(kept)), removed
