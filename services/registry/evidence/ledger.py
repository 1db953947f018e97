"""The audit-ledger entries an evidence pack cites: every entry about the job, the version and its incidents,
each with an inclusion proof under the latest signed tree head, read from the ledger itself through the audit
service's own store and proof builder (the registry's outbox cannot serve: it is pruned after
TUNEGATE_OUTBOX_RETENTION_S). Proofs are checked here against this host's audit log key when it is present;
`tunegate report` checks them again against the key its user trusts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.config import Settings

MAX_LEDGER_ENTRIES = 2_000


class AuditEntry(BaseModel):
    event_id: str
    type: str
    subject: str
    actor: str
    sequence: int
    occurred_at: str
    proof: dict[str, Any] | None
    """The inclusion proof (tunegate.audit.inclusion-proof/v1), or None when none could be made (`detail`)."""
    verified: bool | None
    """Checked here against this host's audit log key; None when that key is not on this host."""
    detail: str


class LedgerRead(BaseModel):
    available: bool
    detail: str
    entries: list[AuditEntry]


def read_ledger(settings: Settings, subjects: list[str]) -> LedgerRead:
    """Entries about `subjects` with their inclusion proofs, read from the audit ledger on this host."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.audit.application import open_store

    store = open_store(settings, create=False)
    try:
        return _read(store, settings, subjects)
    except SQLAlchemyError as exc:  # e.g. a database user without read access to the ledger's tables
        return LedgerRead(available=False, detail=f"audit ledger not readable: {type(exc).__name__}", entries=[])
    finally:
        store.db.dispose()


def _read(store: Any, settings: Settings, subjects: list[str]) -> LedgerRead:
    from services.audit.adapters.keys import local_public_key_path
    from services.audit.domain.proofs import verify_proof_document
    from services.audit.ledger_proofs import ProofUnavailable, build_inclusion_proof
    from shared.security.keys import load_public_key, public_key_pem

    if not store.has_schema():
        return LedgerRead(available=False, detail="no audit ledger at this registry's database URL", entries=[])
    key_file = local_public_key_path(settings)
    key = load_public_key(key_file.read_bytes()) if key_file.is_file() else None
    pem = public_key_pem(key) if key is not None else ""
    with store.read() as conn:
        found = store.entries_about(conn, subjects, MAX_LEDGER_ENTRIES)
    entries = []
    for entry in found:
        base = {"event_id": entry.event_id, "type": entry.type, "subject": entry.subject, "actor": entry.actor,
                "sequence": entry.sequence, "occurred_at": entry.occurred_at}
        try:
            proof = build_inclusion_proof(store, entry.event_id, pem)
        except ProofUnavailable as exc:
            entries.append(AuditEntry(**base, proof=None, verified=False, detail=str(exc)))
            continue
        check = verify_proof_document(proof, key) if key is not None else None
        entries.append(AuditEntry(
            **base, proof=proof.model_dump(mode="json"), verified=None if check is None else check.ok,
            detail=f"not checked: no audit log key at {key_file}" if check is None else check.detail,
        ))
    note = f"; the first {MAX_LEDGER_ENTRIES} only" if len(found) >= MAX_LEDGER_ENTRIES else ""
    return LedgerRead(available=True, detail=f"{len(entries)} entries{note}", entries=entries)
