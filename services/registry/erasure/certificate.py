"""The erasure certificate: what was erased, from which datasets and model versions, what replaced them, and a
proof that the replacements' datasets do not hold the subject's records; checkable offline against the audit
log's key alone.

Proof of absence (docs/erasure.md): for every replacement dataset the certificate lists all its record hashes
in dataset order. A verifier rebuilds the RFC 9162 Merkle root over them (shared/merkle.py, what the scanner
computes as the dataset fingerprint) and checks it equals the fingerprint the replacement version was
registered with, then checks no erased record hash is among them. Listing every leaf costs 64 characters a
record but needs no trust in anything but the hash function.

Trust in the body ("signed with the audit key", issue 14) without the registry ever holding the audit log's
private key: the registry publishes the certificate's digest in `dataset.erasure.completed`, and the
certificate carries that event's payload (`completion`). The audit service records the event's payload hash
in its ledger (only after checking the envelope's signature against the emitter roster) and signs tree heads
over the ledger with its own key. `tunegate erasure show --certificate` attaches `audit_proofs`: the RFC 9162
inclusion proof, under a tree head signed by the audit log's key, of the completion event and of every step's
event. A verifier holding only the audit log's public key checks that the proven entry is a
`dataset.erasure.completed` by the registry for this erasure, that its payload hash is that of `completion`,
and that `completion` names this certificate's digest: altering the body changes the digest, altering
`completion` changes its hash, and a proof of another entry names another event.

The registry's own Ed25519 signature (its service key, public key in keys/trust/registry/) over the canonical
JSON (shared/canonical.py) without the members in UNSIGNED stays as a second signature: it is what the
registry can check before the ledger has recorded anything, and what a host without the ledger can check."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.registry.domain.erasure import Erasure
from shared.canonical import canonical_json, canonical_sha256
from shared.merkle import merkle_root
from shared.roster import producers_of
from shared.security.keys import key_id_for

SCHEMA = "tunegate.erasure-certificate/1"
COMPLETED = "dataset.erasure.completed"
PROGRESSED = "dataset.erasure.progressed"


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


UNSIGNED = ("signature", "audit_proofs", "completion")
"""Members outside the registry's signature: the signature itself, and what is added after signing (the
completion event that names the signed certificate, and the ledger's proofs)."""


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
    """What dataset.erasure.completed names: the signed certificate (its registry signature included), without
    the completion event and the proofs attached after it."""
    return canonical_sha256({k: v for k, v in certificate.items() if k not in ("audit_proofs", "completion")})


def with_completion(certificate: dict[str, Any], event_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The certificate as handed out: with the dataset.erasure.completed event (its id and its payload exactly
    as published) that anchors it in the audit ledger."""
    return {**certificate, "completion": {"event_id": event_id, "type": COMPLETED, "payload": payload}}


def verify(
    certificate: dict[str, Any],
    registry_key: Ed25519PublicKey | None = None,
    log_key: Ed25519PublicKey | None = None,
) -> list[str]:
    """Every check that fails, named; an empty list means the certificate verifies. With `log_key` (the audit
    log's key the caller trusts) the certificate must be anchored in the ledger (see the module's docstring)
    and every step's event proved in it; with `registry_key` the registry's signature is checked too. At
    least one key: a certificate checked against neither is not verified."""
    if registry_key is None and log_key is None:
        raise ValueError("verify needs the audit log's key, the registry's, or both")
    if certificate.get("schema") != SCHEMA:
        return [f"schema is {certificate.get('schema')!r}, expected {SCHEMA!r}"]
    malformed = _shape_problems(certificate)
    if malformed:
        return malformed
    problems: list[str] = []
    if registry_key is not None:
        problems.extend(signature_problems(certificate, registry_key))
    problems.extend(content_problems(certificate))
    if log_key is not None:
        problems.extend(anchor_problems(certificate, log_key))
        problems.extend(proof_problems(certificate, log_key))
    return problems


def _shape_problems(certificate: dict[str, Any]) -> list[str]:
    """A file that is not shaped like a certificate is named as such, never a traceback in the checks below."""
    problems = [f"{name}: expected a list of objects" for name in ("affected_datasets", "replacements", "steps")
                if not isinstance(certificate.get(name), list)
                or not all(isinstance(item, dict) for item in certificate[name])]
    problems += [f"{name}: expected an object" for name in ("audit_proofs", "completion", "signature")
                 if name in certificate and not isinstance(certificate[name], dict)]
    return problems


def signature_problems(certificate: dict[str, Any], registry_key: Ed25519PublicKey) -> list[str]:
    signature = certificate.get("signature") or {}
    try:
        registry_key.verify(base64.b64decode(str(signature.get("value", "")), validate=True),
                            canonical_json(_signed_part(certificate)))
    except (InvalidSignature, ValueError):
        return [f"signature: not valid for key {key_id_for(registry_key)} (the certificate was altered, or signed "
                "by another key)"]
    return []


def content_problems(certificate: dict[str, Any]) -> list[str]:
    """What the body proves by itself: each replacement's dataset holds none of the erased records, every step
    is done."""
    problems: list[str] = []
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
    return problems


def _proven_entry(
    certificate: dict[str, Any], event_id: object, what: str, event_type: str, log_key: Ed25519PublicKey
) -> tuple[Any, list[str]]:
    """The ledger entry of `event_id`, proved under a tree head signed with `log_key`, checked to be an event of
    `event_type` about this erasure emitted by one of its rostered producers; or the problems."""
    from pydantic import ValidationError

    from services.audit.domain.proofs import InclusionProofDocument, verify_proof_document

    raw = (certificate.get("audit_proofs") or {}).get(event_id) if isinstance(event_id, str) else None
    if raw is None:
        return None, [f"{what}: no audit proof of its event {event_id}"]
    try:
        document = InclusionProofDocument.model_validate(raw)
    except ValidationError:
        return None, [f"{what}: malformed audit proof"]
    entry = document.entry
    if entry.event_id != event_id:
        return None, [f"{what}: the proof is of event {entry.event_id}, not {event_id}"]
    check = verify_proof_document(document, log_key)
    if not check.ok:
        return None, [f"{what}: {check.detail}"]
    problems = []
    if entry.type != event_type:
        problems.append(f"{what}: the ledger records event {event_id} as {entry.type}, not {event_type}")
    if entry.producer not in producers_of(event_type):
        problems.append(f"{what}: event {event_id} was produced by {entry.producer!r}, who may not emit {event_type}")
    if entry.subject != certificate.get("erasure_id"):
        problems.append(f"{what}: event {event_id} is about {entry.subject}, not {certificate.get('erasure_id')}")
    return entry, problems


def anchor_problems(certificate: dict[str, Any], log_key: Ed25519PublicKey) -> list[str]:
    """The certificate's body is the one the registry announced in dataset.erasure.completed, and that event is
    in the audit ledger under a tree head signed with `log_key`."""
    completion = certificate.get("completion")
    if not isinstance(completion, dict) or not isinstance(completion.get("payload"), dict):
        return ["not anchored in the audit ledger: no dataset.erasure.completed event (`completion`); write the "
                "certificate with `tunegate erasure show ID --certificate FILE` on a host with the ledger"]
    what = "completion"
    entry, problems = _proven_entry(certificate, completion.get("event_id"), what, COMPLETED, log_key)
    if entry is None:
        return problems
    payload = completion["payload"]
    if canonical_sha256(payload) != entry.payload_sha256:
        problems.append(f"{what}: its payload is not the one the ledger recorded for event {entry.event_id}")
        return problems
    named, actual = payload.get("certificate_sha256"), digest(certificate)
    if named != actual:
        problems.append(f"{what}: the ledger's dataset.erasure.completed names certificate {named}, this one hashes "
                        f"to {actual} (the certificate was altered)")
    if payload.get("erasure_id") != certificate.get("erasure_id"):
        problems.append(f"{what}: the event completes erasure {payload.get('erasure_id')}, not "
                        f"{certificate.get('erasure_id')}")
    replaced = {r.get("alias"): r.get("version_id") for r in certificate.get("replacements", [])}
    if payload.get("replacements") != replaced or payload.get("affected_versions") != certificate.get(
        "affected_versions"
    ):
        problems.append(f"{what}: the event's versions and replacements differ from the certificate's")
    return problems


def proof_problems(certificate: dict[str, Any], log_key: Ed25519PublicKey) -> list[str]:
    """Each step's event is in the ledger, as this erasure's dataset.erasure.progressed by the registry."""
    problems = []
    for step in certificate.get("steps", []):
        _, found = _proven_entry(certificate, step.get("event_id"), f"step {step.get('name')}", PROGRESSED, log_key)
        problems.extend(found)
    return problems


def attach_audit_proofs(document: dict[str, Any], store: Any, log_key_pem: str) -> int:
    """Add `audit_proofs`: the inclusion proof, under the ledger's latest signed tree head, of the certificate's
    completion event (it names the certificate's digest: what makes the certificate checkable against the audit
    key alone) and of each step's event (`store`: the audit service's LedgerStore on this host). Raises
    ProofUnavailable, naming what, while the ledger has not recorded or signed one of them yet. Used by
    `tunegate erasure show --certificate` and the console's certificate download."""
    from services.audit.ledger_proofs import ProofUnavailable, build_inclusion_proof

    wanted = [(f"step {step['name']}", step["event_id"]) for step in document.get("steps", [])]
    completion = document.get("completion") or {}
    if completion.get("event_id"):
        wanted.append((f"the certificate's {completion.get('type')}", completion["event_id"]))
    proofs = {}
    for what, event_id in wanted:
        try:
            proofs[event_id] = build_inclusion_proof(store, event_id, log_key_pem).model_dump(mode="json")
        except ProofUnavailable as exc:
            raise ProofUnavailable(f"{what}: {exc}") from None
    document["audit_proofs"] = proofs
    return len(proofs)
