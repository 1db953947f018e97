"""Event proofs: an inclusion proof plus the payload of the event it proves, so a verifier can read what the
event said, not only that it was recorded.

The ledger keeps each event's payload_sha256 (canonical JSON, shared/canonical.py), never the payload
itself (payloads may be large, and what they reference stays with the services that own it). The payload
comes from whoever published the event (its outbox); the document binds it to the ledger by hash, so the
check is: sha256(canonical payload) == the entry's payload_sha256, and the entry is in the signed tree
(proofs.verify_proof_document). A separate format, so existing inclusion proofs keep their exact shape."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.audit.domain.proofs import (
    InclusionProofDocument,
    ProofCheck,
    PublicKeyInput,
    verify_proof_document,
)
from shared.canonical import canonical_sha256

EVENT_PROOF_FORMAT = "tunegate.audit.event-proof/v1"


class PayloadMismatch(ValueError):
    """The payload offered is not the one the ledger entry committed to."""


class EventProofDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as the inclusion proof it carries

    format: Literal["tunegate.audit.event-proof/v1"] = EVENT_PROOF_FORMAT
    payload: dict[str, Any] = Field(description="The event's payload; its canonical sha256 is the entry's.")
    inclusion: InclusionProofDocument


def payload_problem(payload: dict[str, Any], inclusion: InclusionProofDocument) -> str | None:
    entry = inclusion.entry
    digest = canonical_sha256(payload)
    if digest != entry.payload_sha256:
        return (
            f"the payload's sha256 {digest} is not the payload_sha256 {entry.payload_sha256} that ledger entry"
            f" {entry.sequence} (event {entry.event_id}, {entry.type}) committed to"
        )
    return None


def event_proof(payload: dict[str, Any], inclusion: InclusionProofDocument) -> EventProofDocument:
    """Bundle a payload with the inclusion proof of its event; PayloadMismatch when they do not belong together."""
    problem = payload_problem(payload, inclusion)
    if problem is not None:
        raise PayloadMismatch(problem)
    return EventProofDocument(payload=payload, inclusion=inclusion)


def verify_event_proof(doc: EventProofDocument, public_key: PublicKeyInput) -> ProofCheck:
    """The payload is the entry's, and the entry is in a tree head signed by `public_key` (the caller's)."""
    problem = payload_problem(doc.payload, doc.inclusion)
    if problem is not None:
        return ProofCheck(ok=False, detail=problem)
    check = verify_proof_document(doc.inclusion, public_key)
    if not check.ok:
        return check
    recorded = doc.inclusion.entry.payload_sha256
    return ProofCheck(ok=True, detail=f"{check.detail}; the payload (sha256 {recorded}) is the one it recorded")
