"""The erasure certificate: what was erased, from which datasets and model versions, what replaced them, and a
proof that the replacements' datasets do not hold the subject's records; signed, checkable offline.

Proof of absence (docs/erasure.md): for every replacement dataset the certificate lists all its record hashes
in dataset order. A verifier rebuilds the RFC 9162 Merkle root over them (shared/merkle.py, what the scanner
computes as the dataset fingerprint) and checks it equals the fingerprint the replacement version was
registered with, then checks no erased record hash is among them. Listing every leaf costs 64 characters a
record but needs no trust in anything but the hash function.

The signature is Ed25519 over the canonical JSON (shared/canonical.py) of the certificate without its
`signature` and `audit_proofs` members, by the registry's service key (its public key is in
keys/trust/registry/). `audit_proofs` (added by `tunegate erasure show --certificate`) holds, for the event of
every step, its RFC 9162 inclusion proof under a tree head signed by the audit log's key: they prove
themselves against that key, so they need no registry signature."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.registry.domain.erasure import Erasure
from shared.canonical import canonical_json, canonical_sha256
from shared.merkle import merkle_root
from shared.security.keys import key_id_for

SCHEMA = "tunegate.erasure-certificate/1"


@dataclass(frozen=True)
class Replacement:
    alias: str
    version_id: str
    job_id: str
    fingerprint: str
    record_hashes: list[str]


def build(erasure: Erasure, replacements: list[Replacement], *, issued_at: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "erasure_id": erasure.id,
        "subject_key": erasure.subject_key,
        "reason": erasure.reason,
        "requested_by": erasure.requested_by,
        "requested_at": erasure.requested_at.isoformat(),
        "issued_at": issued_at,
        "affected_datasets": [h.as_dict() for h in erasure.datasets],
        "affected_versions": list(erasure.versions),
        "replacements": [
            {"alias": r.alias, "version_id": r.version_id, "job_id": r.job_id, "fingerprint": r.fingerprint,
             "record_hashes": r.record_hashes}
            for r in replacements
        ],
        "steps": [
            {"name": s.name, "status": s.status, "at": s.at.isoformat(), "event_id": s.event_id, "detail": s.detail}
            for s in erasure.steps
        ],
    }


UNSIGNED = ("signature", "audit_proofs")


def _signed_part(certificate: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in certificate.items() if k not in UNSIGNED}


def sign(certificate: dict[str, Any], key: Ed25519PrivateKey, identity: str) -> dict[str, Any]:
    body = _signed_part(certificate)
    value = key.sign(canonical_json(body))
    return {
        **body,
        "signature": {"alg": "Ed25519", "signer": identity, "key_id": key_id_for(key.public_key()),
                      "value": base64.b64encode(value).decode("ascii")},
    }


def digest(certificate: dict[str, Any]) -> str:
    """What dataset.erasure.completed names: the signed certificate, without any proofs attached later."""
    return canonical_sha256({k: v for k, v in certificate.items() if k != "audit_proofs"})


def verify(
    certificate: dict[str, Any], public_key: Ed25519PublicKey, log_key: Ed25519PublicKey | None = None
) -> list[str]:
    """Every check that fails, named; an empty list means the certificate verifies. With `log_key` (the audit
    log's key the caller trusts) every step's event must also be proved in the ledger."""
    problems: list[str] = []
    if certificate.get("schema") != SCHEMA:
        return [f"schema is {certificate.get('schema')!r}, expected {SCHEMA!r}"]
    signature = certificate.get("signature") or {}
    body = _signed_part(certificate)
    try:
        public_key.verify(base64.b64decode(str(signature.get("value", "")), validate=True), canonical_json(body))
    except (InvalidSignature, ValueError):
        problems.append(f"signature: not valid for key {key_id_for(public_key)} (the certificate was altered, or "
                        "signed by another key)")
    erased = {h for d in certificate.get("affected_datasets", []) for h in d.get("record_hashes", [])}
    for replacement in certificate.get("replacements", []):
        name = f"replacement {replacement.get('version_id')} ({replacement.get('alias')})"
        leaves = replacement.get("record_hashes", [])
        try:
            root = merkle_root(bytes.fromhex(h) for h in leaves).hex()
        except ValueError:
            problems.append(f"{name}: record hashes are not hex")
            continue
        if root != replacement.get("fingerprint"):
            problems.append(f"{name}: record hashes rebuild root {root}, not its fingerprint "
                            f"{replacement.get('fingerprint')}")
        present = sorted(erased & set(leaves))
        if present:
            problems.append(f"{name}: holds {len(present)} erased record(s), e.g. {present[0]}")
    steps = {s.get("name"): s.get("status") for s in certificate.get("steps", [])}
    unfinished = [n for n, status in steps.items() if status not in ("done", "not_needed")]
    if unfinished:
        problems.append(f"steps not done: {', '.join(unfinished)}")
    if log_key is not None:
        problems.extend(proof_problems(certificate, log_key))
    return problems


def proof_problems(certificate: dict[str, Any], log_key: Ed25519PublicKey) -> list[str]:
    from pydantic import ValidationError

    from services.audit.domain.proofs import InclusionProofDocument, verify_proof_document

    proofs = certificate.get("audit_proofs") or {}
    problems = []
    for step in certificate.get("steps", []):
        event_id = step.get("event_id")
        raw = proofs.get(event_id)
        if raw is None:
            problems.append(f"step {step.get('name')}: no audit proof of its event {event_id}")
            continue
        try:
            document = InclusionProofDocument.model_validate(raw)
        except ValidationError:
            problems.append(f"step {step.get('name')}: malformed audit proof")
            continue
        if document.entry.event_id != event_id:
            problems.append(f"step {step.get('name')}: the proof is of event {document.entry.event_id}, not {event_id}")
            continue
        check = verify_proof_document(document, log_key)
        if not check.ok:
            problems.append(f"step {step.get('name')}: {check.detail}")
    return problems


def attach_audit_proofs(document: dict[str, Any], store: Any, log_key_pem: str) -> int:
    """Add `audit_proofs`: the inclusion proof of each step's event under the ledger's latest signed tree head
    (`store`: the audit service's LedgerStore on this host). Raises ProofUnavailable, naming the step, while
    the ledger has not recorded or signed one of them yet. Used by `tunegate erasure show --certificate` and
    the console's certificate download."""
    from services.audit.application import ProofUnavailable, build_inclusion_proof

    proofs = {}
    for step in document.get("steps", []):
        try:
            proofs[step["event_id"]] = build_inclusion_proof(store, step["event_id"], log_key_pem).model_dump(
                mode="json"
            )
        except ProofUnavailable as exc:
            raise ProofUnavailable(f"step {step['name']}: {exc}") from None
    document["audit_proofs"] = proofs
    return len(proofs)
