"""Offline check that an AIBOM file is the one the registry registered, with nothing but the file, an AIBOM
proof (an audit event proof of the version's model.registered event) and the audit log's public key.

Chain of trust: the log's key signs the tree head; the inclusion path puts the ledger entry under that head;
the entry commits to the payload's sha256; the payload (model.registered) names the AIBOM's sha256; the file
hashes to it. Each link that breaks is reported as that link, never as a generic failure."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, ValidationError

from services.audit.domain.event_proofs import EventProofDocument, verify_event_proof
from services.audit.domain.proofs import PublicKeyInput
from shared.events.payloads import ArtifactRef
from shared.validation import describe_validation_error

MODEL_REGISTERED = "model.registered"


class RegisteredAIBOM(BaseModel):
    """The part of model.registered's payload this check reads; the rest of the payload is bound by its hash
    all the same, and may grow without breaking older verifiers."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version_id: str
    aibom: ArtifactRef


class AIBOMCheck(BaseModel):
    ok: bool
    detail: str
    aibom_sha256: str
    version_id: str | None = None
    event_id: str | None = None
    sequence: int | None = None
    tree_size: int | None = None


def verify_aibom(aibom: bytes, proof: EventProofDocument, public_key: PublicKeyInput) -> AIBOMCheck:
    """Is `aibom` (the file's bytes) the AIBOM registered in the model.registered event `proof` proves, in a
    ledger whose tree heads `public_key` (the key the caller trusts, never one from the proof) signed?"""
    digest = hashlib.sha256(aibom).hexdigest()
    entry = proof.inclusion.entry

    def result(ok: bool, detail: str, version_id: str | None = None) -> AIBOMCheck:
        return AIBOMCheck(
            ok=ok,
            detail=detail,
            aibom_sha256=digest,
            version_id=version_id,
            event_id=entry.event_id,
            sequence=entry.sequence,
            tree_size=proof.inclusion.tree_size,
        )

    if entry.type != MODEL_REGISTERED:
        return result(
            False,
            f"the proof is for event {entry.event_id} of type {entry.type}, not a {MODEL_REGISTERED} event:"
            " it says nothing about an AIBOM",
        )
    try:
        claim = RegisteredAIBOM.model_validate(proof.payload)
    except ValidationError as exc:
        return result(
            False,
            f"the {MODEL_REGISTERED} payload of event {entry.event_id} names no AIBOM:"
            f" {describe_validation_error(exc, root='payload', prefix='payload.')}",
        )
    ledger = verify_event_proof(proof, public_key)
    if not ledger.ok:
        return result(False, f"ledger proof refused: {ledger.detail}", claim.version_id)
    if digest != claim.aibom.sha256:
        return result(
            False,
            f"the file's sha256 {digest} is not the AIBOM sha256 {claim.aibom.sha256} registered for model version"
            f" {claim.version_id} by event {entry.event_id}: the file was altered, or the proof is for another"
            " version",
            claim.version_id,
        )
    return result(
        True,
        f"AIBOM sha256 {digest} is the one registered for model version {claim.version_id} by event"
        f" {entry.event_id}, entry {entry.sequence} of the signed tree of size {proof.inclusion.tree_size}"
        f" (root {proof.inclusion.tree_head.root_hash}, signed {proof.inclusion.tree_head.timestamp})",
        claim.version_id,
    )
