"""Scan one dataset file end to end: validate, detect, decide, redact, fingerprint, index, report.

Everything streams. The main process reads raw records in order and hands chunks to worker processes
(bounded in flight, so a 1 GB file never sits in memory); workers do the per-record work (parse, validate,
detect, redact, hash) and return compact results; the main process writes the redacted JSONL, the Merkle
fingerprints, the subject index (a temporary SQLite file) and the findings (a temporary JSONL) as results
arrive. A dataset with any invalid line produces no output at all: it is never half-scanned."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from services.scanner.adapters.detector import DetectorsInfo, describe_detectors, load_registry
from services.scanner.domain.findings import (
    Verdict,
    VerdictInputs,
    decide_verdict,
)
from services.scanner.domain.policy import Action, Policy
from services.scanner.engine.records import WorkerConfig, process_records
from services.scanner.engine.workers import available_cpus
from shared.datasets import (
    DatasetManifest,
    RecordHasher,
    detect_container,
    detect_format,
    iter_raw,
)
from shared.datasets.raw_files import max_line_bytes_for

REPORT_SCHEMA = "tunegate.scan-report/1"
MAX_LISTED_ISSUES = 1000
# Below this many bytes a pool costs more (process start, recognizer load) than it saves.
PARALLEL_MIN_BYTES = 2 << 20


@dataclass
class ScanOptions:
    policy: Policy
    hash_key: bytes
    fmt: str = "auto"
    classification_override: str | None = None
    manifest_missing_blocks: bool = False  # the service blocks; the CLI warns and applies defaults
    workers: int | None = None  # None = all cores for big files, in-process for small ones; capped (records.py)
    chunk_size: int = 256
    registry_path: Path | None = None
    # NER (spaCy) finds names and places in free text; on by default, and a missing model is an error
    # (adapters/ner.NerUnavailable), never a silent fallback. False only when the data holds no free text.
    ner: bool = True


@dataclass
class ScanResult:
    verdict: Verdict | Literal["invalid"]
    blocking_reasons: list[str]
    kind: str
    container: str
    manifest: DatasetManifest
    manifest_path: Path | None
    classification: str
    source_records: int
    record_count: int  # records in the output (what may be trained on)
    dropped_records: int
    modified_records: int
    fingerprint: str  # Merkle root over the output records (source records when blocked/invalid)
    source_fingerprint: str
    totals: dict[str, dict[str, int]]
    issue_count: int
    issues: list[tuple[int, str]]
    findings_count: int
    output_path: Path | None
    report_path: Path
    subject_index_path: Path | None
    subjects: int
    seconds: float
    workers: int
    detectors: DetectorsInfo
    dropped_lines: list[int] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.source_records / self.seconds if self.seconds > 0 else 0.0


class _SubjectIndex:
    """data-subject hash -> output record hashes, spilled to SQLite so it never grows in RAM."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE entries (subject TEXT NOT NULL, record TEXT NOT NULL)")
        self._batch: list[tuple[str, str]] = []

    def add(self, subject: str, record_hash: bytes) -> None:
        self._batch.append((subject, record_hash.hex()))
        if len(self._batch) >= 10_000:
            self.flush()

    def flush(self) -> None:
        self._db.executemany("INSERT INTO entries VALUES (?, ?)", self._batch)
        self._batch.clear()

    def write_json(self, target: Path, fingerprint: str) -> int:
        self.flush()
        self._db.execute("CREATE INDEX by_subject ON entries (subject)")
        subjects = 0
        with target.open("w", encoding="utf-8") as out:
            out.write(f'{{"schema":"tunegate.subject-index/1","fingerprint":"{fingerprint}","subjects":{{')
            current: str | None = None
            for subject, record in self._db.execute("SELECT subject, record FROM entries ORDER BY subject, rowid"):
                if subject != current:
                    out.write(("]," if current is not None else "") + json.dumps(subject) + ":[")
                    current = subject
                    subjects += 1
                else:
                    out.write(",")
                out.write(json.dumps(record))
            out.write(("]" if current is not None else "") + "}}")
        return subjects

    def close(self) -> None:
        self._db.close()
        self.path.unlink(missing_ok=True)


def scan_dataset(
    path: Path,
    manifest: DatasetManifest | None,
    options: ScanOptions,
    workdir: Path,
    *,
    manifest_path: Path | None = None,
    extra_blocking: tuple[str, ...] = (),
) -> ScanResult:
    """Scan `path` into `workdir` (redacted.jsonl, report.json, subjects.json). Raises DatasetError when
    the file cannot be read as a dataset at all; line-level problems come back as verdict 'invalid'."""
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    container = detect_container(path)
    kind = detect_format(path, options.fmt)
    missing = manifest is None
    manifest = manifest or DatasetManifest()
    classification = options.classification_override or manifest.classification
    policy = options.policy
    policy.decide(classification, "", 1.0)  # raises PolicyError early on an unknown classification
    # Before any worker starts: a missing NER model fails here, naming the package to install.
    entries = load_registry(options.registry_path)
    detectors = describe_detectors(
        entries,
        set(policy.floors(classification)),
        ner=options.ner,
        registry_path=options.registry_path,
    )
    workers = options.workers
    if workers is None:
        workers = available_cpus() if path.stat().st_size >= PARALLEL_MIN_BYTES else 1
    started_workers = [workers]  # what process_records actually started (it caps the request)
    config = WorkerConfig(
        policy, classification, kind, options.hash_key, manifest.subject_field, options.registry_path, detectors.ner
    )

    output_path = workdir / "redacted.jsonl"
    findings_tmp = workdir / ".findings.jsonl"
    subjects = _SubjectIndex(workdir / ".subjects.sqlite3")
    source_hasher, out_hasher = RecordHasher(), RecordHasher()
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    block_lines: dict[str, list[int]] = defaultdict(list)
    personal: Counter[str] = Counter()
    issues: list[tuple[int, str]] = []
    issue_count = findings_count = source_records = kept = dropped = modified = 0
    dropped_lines: list[int] = []
    try:
        with output_path.open("wb") as out, findings_tmp.open("w", encoding="utf-8") as findings_out:
            raws = iter_raw(path, container, max_line_bytes=max_line_bytes_for(policy.max_record_chars))
            for result in process_records(
                raws, config, workers, options.chunk_size, entries, on_start=started_workers.append
            ):
                source_records += 1
                if result.issues:
                    issue_count += len(result.issues)
                    if len(issues) < MAX_LISTED_ISSUES:
                        issues.extend((result.line_no, reason) for reason in result.issues)
                    continue
                if issue_count:
                    continue  # invalid dataset: keep validating, stop producing output
                assert result.source_hash is not None
                source_hasher.add_hash(result.source_hash)
                for name, start, end, entity, score, action, op in result.findings:
                    findings_count += 1
                    totals[entity][action] += 1
                    if policy.is_personal(entity):
                        personal[entity] += 1
                    if action == Action.BLOCK_DATASET.value:
                        block_lines[entity].append(result.line_no)
                    findings_out.write(
                        json.dumps(
                            {
                                "line": result.line_no,
                                "field": name,
                                "start": start,
                                "end": end,
                                "entity": entity,
                                "score": score,
                                "action": action,
                                "operator": op,
                            },
                            separators=(",", ":"),
                        )
                        + "\n"
                    )
                if result.out_line is None:
                    dropped += 1
                    if len(dropped_lines) < MAX_LISTED_ISSUES:
                        dropped_lines.append(result.line_no)
                    continue
                assert result.out_hash is not None
                if result.out_hash != result.source_hash:
                    modified += 1
                out.write(result.out_line)
                out_hasher.add_hash(result.out_hash)
                kept += 1
                if result.subject is not None:
                    subjects.add(result.subject, result.out_hash)
        if source_records == 0:
            issue_count, issues = 1, [(0, "the dataset has no records")]
        blocking: tuple[str, ...] = extra_blocking
        if missing and options.manifest_missing_blocks:
            blocking = (
                *blocking,
                f"no dataset manifest for {path.name}: classification, legal basis and "
                "consent are undeclared (provide <dataset>.manifest.yaml or manifest_uri)",
            )
        verdict: Verdict | Literal["invalid"]
        reasons: list[str]
        if issue_count:
            verdict, reasons = "invalid", [f"line {n}: {reason}" for n, reason in issues]
            output_path.unlink(missing_ok=True)
        else:
            verdict, reasons = decide_verdict(
                VerdictInputs(
                    block_findings=block_lines,
                    personal_counts=personal,
                    personal_data_allowed=manifest.personal_data_allowed() and not missing,
                    personal_refusal=(
                        "there is no dataset manifest declaring a legal basis"
                        if missing
                        else manifest.personal_data_refusal()
                    ),
                    modified_records=modified,
                    dropped_records=dropped,
                    extra_blocking=blocking,
                )
            )
        source_fp = source_hasher.hexdigest()
        fingerprint = out_hasher.hexdigest() if verdict in ("clean", "redacted") else source_fp
        subject_index_path: Path | None = None
        subject_count = 0
        if verdict in ("clean", "redacted") and manifest.subject_field:
            subject_index_path = workdir / "subjects.json"
            subject_count = subjects.write_json(subject_index_path, fingerprint)
        if verdict not in ("clean", "redacted"):
            output_path.unlink(missing_ok=True)
        seconds = time.perf_counter() - started
        result_obj = ScanResult(
            verdict=verdict,
            blocking_reasons=reasons,
            kind=kind,
            container=container,
            manifest=manifest,
            manifest_path=manifest_path,
            classification=classification,
            source_records=source_records,
            record_count=kept if verdict in ("clean", "redacted") else 0,
            dropped_records=dropped,
            modified_records=modified,
            fingerprint=fingerprint,
            source_fingerprint=source_fp,
            totals={e: dict(a) for e, a in sorted(totals.items())},
            issue_count=issue_count,
            issues=issues,
            findings_count=findings_count,
            output_path=output_path if output_path.exists() else None,
            report_path=workdir / "report.json",
            subject_index_path=subject_index_path,
            subjects=subject_count,
            seconds=seconds,
            workers=started_workers[-1],
            detectors=detectors,
            dropped_lines=dropped_lines,
        )
        _write_report(result_obj, path, policy, findings_tmp, missing)
        return result_obj
    finally:
        subjects.close()
        findings_tmp.unlink(missing_ok=True)


def _write_report(result: ScanResult, source: Path, policy: Policy, findings_tmp: Path, missing: bool) -> None:
    """The report is JSON with the findings array streamed in last (it can be large)."""
    header: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "verdict": result.verdict,
        "blocking_reasons": result.blocking_reasons,
        "dataset": {
            "name": source.name,
            "container": result.container,
            "format": result.kind,
            "records": result.source_records,
            "records_out": result.record_count,
            "records_dropped": result.dropped_records,
            "records_modified": result.modified_records,
        },
        "fingerprint": result.fingerprint,
        "source_fingerprint": result.source_fingerprint,
        "classification": result.classification,
        "manifest": None if missing else result.manifest.model_dump(mode="json"),
        "policy": policy.name,
        "totals": result.totals,
        "validation": {"issues": result.issue_count, "listed": [{"line": n, "reason": r} for n, r in result.issues]},
        "dropped_lines": result.dropped_lines,
        "subject_index": {"subjects": result.subjects},
        "scanner": {
            "workers": result.workers,
            "ner": result.detectors.ner,
            "detectors": result.detectors.as_dict(),
            "seconds": round(result.seconds, 3),
            "records_per_s": round(result.records_per_s, 1),
        },
        "findings_count": result.findings_count,
    }
    with result.report_path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header, indent=None)[:-1] + ',"findings":[')
        first = True
        if result.verdict != "invalid" and findings_tmp.exists():
            with findings_tmp.open(encoding="utf-8") as lines:
                for line in lines:
                    out.write(("" if first else ",") + line.rstrip("\n"))
                    first = False
        out.write("]}")
