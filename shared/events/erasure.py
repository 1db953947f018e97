"""Wire types of erasure through lineage (GDPR Art. 17): the `dataset.erasure.*` events (tunegate.datasets).

The data subject's id never travels: only a keyed hash of it (the registry's erasure key, so the ledger
cannot be searched with a guessed e-mail address) and the hashes of the records that held it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.payloads import SHA256_PATTERN, JobId, Payload
from shared.ids import ModelVersionId

ERASURE_ID_PATTERN = r"^er-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ErasureStepName = Literal[
    "located", "tainted", "retired", "retraining_submitted", "replacement_deployed", "artefacts_deleted",
    "certificate_issued",
]
ErasureStepStatus = Literal["done", "pending", "scheduled", "not_needed"]
MAX_AFFECTED = 1_000


class ErasureRequested(Payload):
    erasure_id: str = Field(pattern=ERASURE_ID_PATTERN)
    subject_key: str = Field(pattern=SHA256_PATTERN, description="HMAC-SHA256 of the subject id (erasure key).")
    reason: str = Field(min_length=1, max_length=4_000)
    requested_by: str = Field(min_length=1, max_length=200)


class AffectedDataset(Payload):
    job_id: JobId
    fingerprint: str = Field(pattern=SHA256_PATTERN)
    record_hashes: list[str] = Field(max_length=100_000, description="The subject's records in it (hashes).")


class ErasureProgressed(Payload):
    erasure_id: str = Field(pattern=ERASURE_ID_PATTERN)
    step: ErasureStepName
    status: ErasureStepStatus
    datasets: list[AffectedDataset] = Field(default_factory=list, max_length=MAX_AFFECTED)
    versions: list[ModelVersionId] = Field(default_factory=list, max_length=MAX_AFFECTED)
    detail: str = Field(default="", max_length=4_000)
    due: str | None = Field(default=None, description="ISO moment a scheduled step is due (grace period).")


class ErasureShredded(Payload):
    """The scanner deleted its stored copies (raw and redacted) of the datasets that held the subject's records."""

    erasure_id: str = Field(pattern=ERASURE_ID_PATTERN)
    job_ids: list[JobId] = Field(max_length=MAX_AFFECTED)
    deleted: list[str] = Field(default_factory=list, max_length=MAX_AFFECTED, description="sha256 of each copy.")


class ErasureCompleted(Payload):
    erasure_id: str = Field(pattern=ERASURE_ID_PATTERN)
    affected_datasets: list[str] = Field(default_factory=list, max_length=MAX_AFFECTED)
    affected_versions: list[ModelVersionId] = Field(default_factory=list, max_length=MAX_AFFECTED)
    replacements: dict[str, ModelVersionId] = Field(default_factory=dict, description="alias -> replacement")
    certificate_sha256: str = Field(
        pattern=SHA256_PATTERN,
        description="sha256 of the certificate's canonical JSON without `completion` and `audit_proofs`: its "
        "entry in the audit ledger anchors the certificate, so it verifies against the audit log's key.",
    )
