"""Collect what exists as evidence for one model version: the registry's own records (the version, its job,
evaluations, aliases, incidents), the artefacts they name (checked against their recorded sha256), and the
audit-ledger entries about the job, the version and its incidents with their inclusion proofs (ledger.py).
Each kind is present, partial or absent with the reason; nothing is made up."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.registry.adapters import incident_repository, model_repository, repository
from services.registry.domain.deployments import ModelAlias
from services.registry.domain.incidents import Incident
from services.registry.domain.job import Job
from services.registry.domain.model_version import ModelVersion
from services.registry.evidence.check import Evidence, EvidenceItem, EvidenceStatus, Obligations
from services.registry.evidence.ledger import LedgerRead, read_ledger
from shared.config import Settings
from shared.events.payloads import ArtifactRef
from shared.json_input import parse_json
from shared.storage.artifacts import ArtifactStore

MAX_AIBOM_BYTES = 16 * 1024 * 1024
USE_CASE_FIELDS = ("problem", "why_not_prompting", "why_not_rag", "data_description", "risks")


@dataclass
class Records:
    """What the registry holds about one version."""

    version: ModelVersion
    job: Job | None
    aliases: list[ModelAlias]
    incidents: list[Incident]
    ledger: LedgerRead
    artifacts: ArtifactStore
    now: datetime

    def entries(self, *types: str, after: datetime | None = None) -> list[str]:
        return [e.event_id for e in self.ledger.entries if e.type in types
                and (after is None or datetime.fromisoformat(e.occurred_at) > after)]

    def artefact(self, ref: dict[str, Any]) -> tuple[bytes | None, str]:
        """The artefact's bytes when it is in this registry's store and hashes to the recorded digest."""
        try:
            path = self.artifacts.verify(ArtifactRef.model_validate(ref))
        except FileNotFoundError:
            return None, f"{ref.get('uri')} is not in this registry's artefact store"
        except ValueError as exc:
            return None, f"does not match the sha256 on record: {exc}"
        if path.stat().st_size > MAX_AIBOM_BYTES:
            return None, f"{ref.get('uri')} is over {MAX_AIBOM_BYTES} bytes"
        return path.read_bytes(), ""


def load_records(session: Any, settings: Settings, version_id: str, now: datetime) -> Records:
    version = model_repository.require_version(session, version_id)
    job = repository.load_job(session, version.job_id)
    incidents = incident_repository.incidents_of_version(session, version.id)
    aliases = [a for a in model_repository.list_aliases(session) if any(m.version_id == version.id for m in a.history)]
    ledger = read_ledger(settings, [version.job_id, version.id, *(i.id for i in incidents)])
    return Records(version, job, aliases, incidents, ledger, ArtifactStore(settings.home_dir / "artifacts"), now)


def _evidence(kind: str, spec: Obligations, status: EvidenceStatus, summary: str, missing: str = "",
              items: list[EvidenceItem] | None = None, entries: list[str] | None = None) -> Evidence:
    return Evidence(kind=kind, title=spec.evidence_kinds[kind].title, status=status, summary=summary,
                    missing=missing, items=items or [], ledger_entries=entries or [])


def _ledger_types(spec: Obligations, kind: str) -> tuple[str, ...]:
    return tuple(spec.evidence_kinds[kind].ledger_types)


def _no_job(kind: str, spec: Obligations, r: Records) -> Evidence:
    return _evidence(kind, spec, "absent", "no job record", f"the job {r.version.job_id} is not in this registry")


def use_case(r: Records, spec: Obligations, kind: str) -> Evidence:
    if r.job is None:
        return _no_job(kind, spec, r)
    case = r.job.spec.use_case
    blank = [f for f in USE_CASE_FIELDS if not getattr(case, f).strip()]
    items = [EvidenceItem(label=f"use case {case.name!r}", detail=case.description or "")]
    items += [EvidenceItem(label=f, detail=getattr(case, f)) for f in USE_CASE_FIELDS if f not in blank]
    entries = r.entries(*_ledger_types(spec, kind))
    missing = f"the job's use case leaves {', '.join(blank)} empty" if blank else ""
    return _evidence(kind, spec, "partial" if blank else "present", f"use case {case.name!r} (domain {case.domain})",
                     missing, items, entries)


def risk_classification(r: Records, spec: Obligations, kind: str) -> Evidence:
    if r.job is None:
        return _no_job(kind, spec, r)
    job = r.job
    return _evidence(kind, spec, "present", f"risk tier {job.risk_tier} by rule {job.tier_rule}",
                     items=[EvidenceItem(label=f"tier {job.risk_tier}", detail=job.tier_reason)],
                     entries=r.entries(*_ledger_types(spec, kind)))


def scan_report(r: Records, spec: Obligations, kind: str) -> Evidence:
    if r.job is None or not r.job.scan_summary:
        return _evidence(kind, spec, "absent", "no scan on record", "the job has no dataset scan result")
    summary = r.job.scan_summary
    items = [EvidenceItem(label="scan verdict", detail=str(r.job.scan_verdict)),
             EvidenceItem(label="training data fingerprint", detail=str(r.job.data_fingerprint),
                          sha256=r.job.data_fingerprint),
             EvidenceItem(label="findings by entity and action", detail=json.dumps(summary.get("totals", {}),
                                                                                   sort_keys=True))]
    return _evidence(kind, spec, "present", f"dataset scanned: verdict {r.job.scan_verdict}", items=items,
                     entries=r.entries(*_ledger_types(spec, kind)))


def _aibom(r: Records) -> tuple[dict[str, Any] | None, str]:
    raw, problem = r.artefact(r.version.aibom)
    if raw is None:
        return None, problem
    try:
        return parse_json(raw), ""
    except ValueError as exc:
        return None, f"the stored AIBOM is not JSON ({exc})"


def dataset_governance(r: Records, spec: Obligations, kind: str) -> Evidence:
    bom, problem = _aibom(r)
    if bom is None:
        return _evidence(kind, spec, "absent", "AIBOM not readable", problem)
    facts: dict[str, str] = {}
    for component in bom.get("components", []):
        if component.get("type") == "data":
            facts |= {p["name"].removeprefix("tunegate:"): p["value"] for p in component.get("properties", [])}
    wanted = ("dataset.classification", "dataset.legal_basis")
    items = [EvidenceItem(label=name, detail=facts[name], ref=r.version.aibom["uri"])
             for name in wanted if name in facts]
    lacking = [name for name in wanted if name not in facts]
    if not items:
        return _evidence(kind, spec, "absent", "no dataset facts", "the AIBOM's data components name neither "
                         "classification nor legal basis (no dataset manifest)")
    return _evidence(kind, spec, "partial" if lacking else "present", f"dataset {', '.join(i.detail for i in items)}",
                     f"the dataset manifest declares no {', '.join(lacking)}" if lacking else "", items,
                     r.entries(*_ledger_types(spec, kind)))


def approvals(r: Records, spec: Obligations, kind: str) -> Evidence:
    v = r.version
    job_ok = [a for a in (r.job.approvals if r.job else []) if a.decision == "approve"]
    items = [EvidenceItem(label=f"job approved by {a.approver}", detail=f"{a.at:%Y-%m-%d %H:%M} UTC {a.comment}")
             for a in job_ok]
    items += [EvidenceItem(label=f"version approved by {a.approver}", detail=f"{a.at:%Y-%m-%d %H:%M} UTC {a.comment}")
              for a in v.approvals if a.decision == "approve"]
    need = r.job.required_approvals if r.job else v.required_approvals
    missing = []
    if len(job_ok) < need:
        missing.append(f"the job has {len(job_ok)} of {need} approvals")
    if v.approvals_so_far < v.required_approvals:
        missing.append(f"the version has {v.approvals_so_far} of {v.required_approvals} approvals")
    people = {a.approver for a in job_ok} | {a.approver for a in v.approvals if a.decision == "approve"}
    status: EvidenceStatus = "absent" if not items else ("partial" if missing else "present")
    return _evidence(kind, spec, status, f"{len(items)} approval(s) by {len(people)} approver(s)", "; ".join(missing),
                     items, r.entries(*_ledger_types(spec, kind)))


def evaluation_report(r: Records, spec: Obligations, kind: str) -> Evidence:
    v = r.version
    raw, problem = r.artefact(v.report)
    failures = ", ".join(str(f.get("metric")) for f in v.verdict.get("failures") or [])
    items = [EvidenceItem(label="evaluation report", detail=f"evaluation {v.evaluation_id}", ref=v.report["uri"],
                          sha256=v.report["sha256"]),
             EvidenceItem(label="release gate", detail="passed" if v.gate_passed else f"FAILED ({failures})")]
    missing = [problem] if raw is None else []
    if not v.gate_passed:
        missing.append(f"the release gate failed: {failures or 'incomplete verdict'}")
    return _evidence(kind, spec, "partial" if missing else "present",
                     f"evaluation {v.evaluation_id}: gate {'passed' if v.gate_passed else 'failed'}",
                     "; ".join(missing), items, r.entries(*_ledger_types(spec, kind)))


def _suites(r: Records) -> dict[str, dict[str, Any]]:
    run = next((e for e in (r.job.evaluations if r.job else []) if e.evaluation_id == r.version.evaluation_id), None)
    return {} if run is None else {s["name"]: s for s in run.suites}


def suite(r: Records, spec: Obligations, kind: str) -> Evidence:
    name = kind.removeprefix("suite.")
    ran = _suites(r).get(name)
    if ran is None:
        return _evidence(kind, spec, "absent", f"suite {name} did not run",
                         f"evaluation {r.version.evaluation_id} has no {name} results")
    base = ran.get("base_metrics", {})
    metrics = ", ".join(f"{k} {v} (base {base.get(k)})" for k, v in ran.get("metrics", {}).items())
    return _evidence(kind, spec, "present", f"{name}: {metrics or 'ran'}",
                     items=[EvidenceItem(label=name, detail=metrics, ref=r.version.report["uri"])],
                     entries=r.entries(*_ledger_types(spec, kind)))


def aibom(r: Records, spec: Obligations, kind: str) -> Evidence:
    bom, problem = _aibom(r)
    ref = r.version.aibom
    item = EvidenceItem(label="CycloneDX AIBOM", detail=f"spec {bom.get('specVersion')}" if bom else problem,
                        ref=ref["uri"], sha256=ref["sha256"])
    entries = r.entries(*_ledger_types(spec, kind))
    if bom is None:
        return _evidence(kind, spec, "absent", "AIBOM not readable", problem, [item], entries)
    return _evidence(kind, spec, "present", f"AIBOM sha256 {ref['sha256'][:16]}..., committed to by model.registered",
                     items=[item], entries=entries)


def decommissioning_plan(r: Records, spec: Obligations, kind: str) -> Evidence:
    plan = r.version.decommissioning
    items = [EvidenceItem(label=k, detail=str(v)) for k, v in plan.items()]
    items.append(EvidenceItem(label="review by", detail=r.version.review_by.isoformat()))
    overdue = r.version.review_overdue(r.now.date())
    return _evidence(kind, spec, "partial" if overdue else "present", f"owner {plan.get('owner')}",
                     f"past its review date {r.version.review_by}" if overdue else "", items,
                     r.entries(*_ledger_types(spec, kind)))


def _moves(r: Records) -> list[tuple[str, Any]]:
    return [(a.name, m) for a in r.aliases for m in a.history if m.version_id == r.version.id]


def deployment(r: Records, spec: Obligations, kind: str) -> Evidence:
    moves = _moves(r)
    if not moves:
        return _evidence(kind, spec, "absent", "never deployed", "the version was never deployed under an alias")
    items = [EvidenceItem(label=f"alias {name} by {m.by}", detail=f"{m.at:%Y-%m-%d %H:%M} UTC tenants "
                          f"{', '.join(m.tenants)}") for name, m in moves]
    return _evidence(kind, spec, "present", f"state {r.version.state.value}; deployed {len(moves)} time(s)",
                     items=items, entries=r.entries(*_ledger_types(spec, kind)))


def transparency_marking(r: Records, spec: Obligations, kind: str) -> Evidence:
    moves = _moves(r)
    if not moves:
        return _evidence(kind, spec, "absent", "never deployed", "the version was never served, so nothing was marked")
    marked = [(name, m) for name, m in moves if m.watermark]
    items = [EvidenceItem(label=f"alias {name}", detail="watermarked" if m.watermark else "not watermarked")
             for name, m in moves]
    if not marked:
        return _evidence(kind, spec, "partial", "deployed without the watermark",
                         "no deployment of this version turned the gateway's text watermark on (answers carry only "
                         "the gateway's signed provenance)", items, r.entries(*_ledger_types(spec, kind)))
    return _evidence(kind, spec, "present", f"watermarked in {len(marked)} of {len(moves)} deployment(s)",
                     items=items, entries=r.entries(*_ledger_types(spec, kind)))


def monitoring_results(r: Records, spec: Obligations, kind: str) -> Evidence:
    deployed = [t.at for t in r.version.transitions if t.to_state == "deployed"]
    if not deployed:
        return _evidence(kind, spec, "absent", "never deployed", "no monitoring before deployment")
    runs = [e for e in (r.job.evaluations if r.job else []) if e.finished_at and e.finished_at > deployed[0]]
    if not runs:
        return _evidence(kind, spec, "absent", "no evaluation since deployment",
                         f"no evaluation of job {r.version.job_id} finished after the first deployment "
                         f"({deployed[0]:%Y-%m-%d %H:%M} UTC)")
    items = [EvidenceItem(label=f"evaluation {e.evaluation_id}", detail=f"{e.status} {e.finished_at:%Y-%m-%d %H:%M}",
                          ref=(e.report or {}).get("uri")) for e in runs]
    return _evidence(kind, spec, "present", f"{len(runs)} evaluation(s) after deployment", items=items,
                     entries=r.entries(*_ledger_types(spec, kind), after=deployed[0]))


def incidents(r: Records, spec: Obligations, kind: str) -> Evidence:
    items = [EvidenceItem(label=f"{i.id} ({i.status}, {i.severity})", ref=i.id,
                          detail=f"{i.title}; report due {i.deadline:%Y-%m-%d %H:%M} UTC" if i.deadline
                          else f"{i.title}; no report due") for i in r.incidents]
    late = [i.id for i in r.incidents if i.overdue(r.now)]
    open_ = sum(1 for i in r.incidents if i.status == "open")
    summary = f"{len(r.incidents)} incident(s) recorded, {open_} open"
    return _evidence(kind, spec, "partial" if late else "present", summary,
                     f"Art. 73 report overdue for {', '.join(late)}" if late else "", items,
                     r.entries(*_ledger_types(spec, kind)))


def audit_trail(r: Records, spec: Obligations, kind: str) -> Evidence:
    ledger = r.ledger
    if not ledger.available:
        return _evidence(kind, spec, "absent", "ledger not readable", ledger.detail)
    entries = ledger.entries
    proven = [e for e in entries if e.verified]
    unproven = [e for e in entries if not e.verified]
    if not entries:
        return _evidence(kind, spec, "absent", "no entries", "the ledger holds no entry about this job or version")
    missing = (f"{len(unproven)} of {len(entries)} entries without a verified inclusion proof "
               f"(first: {unproven[0].event_id}: {unproven[0].detail})") if unproven else ""
    return _evidence(kind, spec, "partial" if unproven else "present",
                     f"{len(entries)} ledger entries, {len(proven)} with verified inclusion proofs", missing,
                     entries=[e.event_id for e in entries])


def eu_database_registration(r: Records, spec: Obligations, kind: str) -> Evidence:
    return _evidence(kind, spec, "absent", "not recorded",
                     "tunegate records no EU database registration number for model versions")


GATHERERS: dict[str, Callable[[Records, Obligations, str], Evidence]] = {
    "use_case": use_case,
    "risk_classification": risk_classification,
    "scan_report": scan_report,
    "dataset_governance": dataset_governance,
    "approvals": approvals,
    "evaluation_report": evaluation_report,
    "aibom": aibom,
    "decommissioning_plan": decommissioning_plan,
    "deployment": deployment,
    "transparency_marking": transparency_marking,
    "monitoring_results": monitoring_results,
    "incidents": incidents,
    "audit_trail": audit_trail,
    "eu_database_registration": eu_database_registration,
}


def gather(records: Records, spec: Obligations) -> dict[str, Evidence]:
    """Every evidence kind obligations.yaml names; `suite.<name>` kinds read that suite's results."""
    found = {}
    for kind in spec.evidence_kinds:
        collect = suite if kind.startswith("suite.") else GATHERERS.get(kind)
        if collect is None:
            raise KeyError(f"obligations.yaml names evidence kind {kind!r} that gather.py does not collect")
        found[kind] = collect(records, spec, kind)
    return found
