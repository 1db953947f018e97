"""A model version's compliance evidence pack: the obligations of obligations.yaml, each decided from the
evidence gather.py found (check.py), with the audit-ledger entries and their inclusion proofs. The JSON is
the pack; render.py turns it into self-contained HTML. Served by GET /models/{version}/evidence and written
by `tunegate report VERSION --out DIR`."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from services.registry.evidence.check import Evidence, ObligationResult, Obligations, counts, decide
from services.registry.evidence.gather import gather, load_records
from services.registry.evidence.ledger import AuditEntry
from shared.config import Settings

PACK_FORMAT = "tunegate.evidence-pack/v1"
OBLIGATIONS_FILE = Path(__file__).with_name("obligations.yaml")


class ObligationsError(ValueError):
    pass


@cache
def load_obligations(path: Path = OBLIGATIONS_FILE) -> Obligations:
    from shared.yaml_models import load_yaml_model

    return load_yaml_model(path, Obligations, "obligations", ObligationsError)


class PackSummary(BaseModel):
    evidenced: int
    partly: int
    gap: int
    not_applicable: int
    audit_entries: int
    proofs_verified: int


class EvidencePack(BaseModel):
    format: str = PACK_FORMAT
    version_id: str
    generated_at: datetime
    model: dict[str, Any]
    """The version's identity: name, state, tier, job, base model, artefact and AIBOM digests."""
    ledger: dict[str, Any]
    summary: PackSummary
    obligations: list[ObligationResult]
    evidence: dict[str, Evidence]
    audit_entries: list[AuditEntry]


def build_pack(session: Any, settings: Settings, version_id: str, now: datetime) -> EvidencePack:
    spec = load_obligations()
    records = load_records(session, settings, version_id, now)
    evidence = gather(records, spec)
    v = records.version
    results = [decide(o, evidence, v.risk_tier) for o in spec.obligations]
    tally = counts(results)
    entries = records.ledger.entries
    return EvidencePack(
        version_id=v.id,
        generated_at=now,
        model={
            "id": v.id, "model_name": v.model_name, "state": v.state.value, "risk_tier": v.risk_tier,
            "job_id": v.job_id, "requester": v.requester, "base_model": v.base_model,
            "base_model_sha256": v.base_model_sha256, "adapter": v.adapter, "artifact": v.artifact,
            "aibom": v.aibom, "report": v.report, "registered_at": v.registered_at.isoformat(),
            "alias": v.alias, "tenants": list(v.tenants),
        },
        ledger={"available": records.ledger.available, "detail": records.ledger.detail},
        summary=PackSummary(
            **tally, audit_entries=len(entries), proofs_verified=sum(1 for e in entries if e.verified)
        ),
        obligations=results,
        evidence=evidence,
        audit_entries=entries,
    )
