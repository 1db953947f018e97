"""What an evidence pack is made of, and the decision per obligation: evidenced when every kind of evidence it
names is present, partly when some are (or are only partial), a gap when none is. A gap is listed with what
is missing and why, never filled with text. Pure: no I/O (gather.py collects, pack.py assembles)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EvidenceStatus = Literal["present", "partial", "absent"]
ObligationStatus = Literal["evidenced", "partly", "gap", "not_applicable"]
STATUSES: tuple[ObligationStatus, ...] = ("evidenced", "partly", "gap", "not_applicable")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KindSpec(_Strict):
    title: str
    ledger_types: list[str] = Field(default_factory=list, description="Audit-ledger event types backing it.")


class ObligationSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    framework: str
    ref: str
    title: str
    applies_to: list[Literal["minimal", "limited", "high"]] | None = Field(
        default=None, description="Risk tiers it applies to; None: every tier."
    )
    evidence: list[str] = Field(min_length=1)


class Obligations(_Strict):
    """obligations.yaml: the evidence kinds and the obligations that name them."""

    evidence_kinds: dict[str, KindSpec]
    obligations: list[ObligationSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_kinds(self) -> Obligations:
        for obligation in self.obligations:
            unknown = [k for k in obligation.evidence if k not in self.evidence_kinds]
            if unknown:
                raise ValueError(f"obligation {obligation.id} names unknown evidence kinds {unknown}")
        ids = [o.id for o in self.obligations]
        if len(ids) != len(set(ids)):
            raise ValueError("obligation ids must be unique")
        return self


class EvidenceItem(_Strict):
    label: str
    detail: str = ""
    ref: str | None = Field(default=None, description="Where it is: an artefact URI, or a ledger event id.")
    sha256: str | None = None


class Evidence(_Strict):
    kind: str
    title: str
    status: EvidenceStatus
    summary: str
    missing: str = Field(default="", description="What is missing and why (partial or absent), else empty.")
    items: list[EvidenceItem] = Field(default_factory=list)
    ledger_entries: list[str] = Field(default_factory=list, description="Event ids of the entries backing it.")


class ObligationResult(_Strict):
    id: str
    framework: str
    ref: str
    title: str
    status: ObligationStatus
    evidence: list[str]
    gaps: list[str] = Field(default_factory=list)
    note: str = ""


def decide(spec: ObligationSpec, evidence: dict[str, Evidence], risk_tier: str) -> ObligationResult:
    base = {"id": spec.id, "framework": spec.framework, "ref": spec.ref, "title": spec.title,
            "evidence": list(spec.evidence)}
    if spec.applies_to is not None and risk_tier not in spec.applies_to:
        return ObligationResult(
            **base, status="not_applicable",
            note=f"applies to {', '.join(spec.applies_to)}-risk systems; this version's tier is {risk_tier}",
        )
    found = [evidence[kind] for kind in spec.evidence]
    gaps = [f"{e.kind}: {e.missing or e.summary}" for e in found if e.status != "present"]
    if not gaps:
        status: ObligationStatus = "evidenced"
    elif any(e.status != "absent" for e in found):
        status = "partly"
    else:
        status = "gap"
    return ObligationResult(**base, status=status, gaps=gaps)


def counts(results: list[ObligationResult]) -> dict[str, int]:
    return {status: sum(1 for r in results if r.status == status) for status in STATUSES}
