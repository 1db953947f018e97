"""The per-record work of a scan, run in worker processes: parse, validate, detect, decide, redact, hash.

Workers get their configuration once (`WorkerConfig`) and return compact `RecordResult`s; `process_records`
fans chunks out to a bounded pool (or runs them inline for small files) and yields results in order. A chunk
is detected in one call, so repeated texts are analysed once and NER runs batched (adapters/detector.py)."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

from services.scanner.adapters.anonymizer import Redactor
from services.scanner.adapters.detector import Detection, Detector, RegistryEntry, load_registry
from services.scanner.domain.findings import (
    Span,
    decide_spans,
    record_action,
)
from services.scanner.domain.policy import Action, Policy
from services.scanner.engine.workers import MAX_WORKERS, available_cpus, plan_workers
from shared.canonical import canonical_json
from shared.datasets import (
    RawRecord,
    field_path_str,
    parse_raw,
    set_field,
    text_fields,
    validate_record,
)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs to build its own detector and redactor (picklable)."""

    policy: Policy
    classification: str
    kind: str
    hash_key: bytes
    subject_field: str | None
    registry_path: Path | None = None
    ner: bool = False


# A parsed, valid record waiting for its detections: line number, record, subject hash, text fields.
_Prepared = tuple[int, dict[str, Any], str | None, list[tuple[Any, str]]]


@dataclass(slots=True)
class RecordResult:
    line_no: int
    issues: list[str]
    findings: list[tuple[str, int, int, str, float, str, str | None]]  # field, start, end, entity, score, action, op
    action: str = Action.ALLOW.value
    out_line: bytes | None = None  # canonical JSON line of the record as it enters training (None = dropped)
    out_hash: bytes | None = None
    source_hash: bytes | None = None
    subject: str | None = None  # sha256 hex of the data-subject id


def _subject_of(record: dict[str, Any], dotted: str) -> Any:
    node: Any = record
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


class RecordProcessor:
    """The per-record work, identical in-process and in a worker. `entries`: the recognizer registry already
    loaded (by the scan, to describe its detectors), instead of loading it again."""

    def __init__(self, config: WorkerConfig, entries: list[RegistryEntry] | None = None) -> None:
        self.config = config
        policy = config.policy
        min_scores = policy.floors(config.classification)
        if entries is None:
            entries = load_registry(config.registry_path)
        self.detector = Detector(entries, set(min_scores), ner=config.ner, min_scores=min_scores)
        self.redactor = Redactor(config.hash_key)

    def process_many(self, raws: list[RawRecord]) -> list[RecordResult]:
        """A chunk at a time: every text field of the chunk goes to the detector in one call, so repeated
        texts are analysed once and NER runs batched; then each record is decided and redacted."""
        prepared = [self._prepare(raw) for raw in raws]
        texts = [text for item in prepared if not isinstance(item, RecordResult) for _, text in item[3]]
        detections = iter(self.detector.detect_many(texts))
        results = []
        for item in prepared:
            if isinstance(item, RecordResult):
                results.append(item)
                continue
            fields = [(path, text, next(detections)) for path, text in item[3]]
            results.append(self._finish(item, fields))
        return results

    def _prepare(self, raw: RawRecord) -> RecordResult | _Prepared:
        """Parse and validate; an invalid record is already its result."""
        config = self.config
        record, problem = parse_raw(raw)
        if record is None:
            return RecordResult(raw.line_no, [str(problem)], [])
        issues = validate_record(record, config.kind, max_chars=config.policy.max_record_chars)
        subject = None
        if config.subject_field:
            value = _subject_of(record, config.subject_field)
            if value is None or value == "":
                issues.append(f"subject field {config.subject_field!r} (declared in the manifest) is missing")
            else:
                subject = hashlib.sha256(str(value).encode("utf-8")).hexdigest()
        if issues:
            return RecordResult(raw.line_no, issues, [])
        return raw.line_no, record, subject, list(text_fields(record, config.kind))

    def _finish(self, prepared: _Prepared, fields: list[tuple[Any, str, list[Detection]]]) -> RecordResult:
        config = self.config
        line_no, record, subject, _ = prepared
        try:
            source_line = canonical_json(record)
        except (TypeError, ValueError) as exc:
            # NaN or Infinity in a JSONL line (json accepts them), bytes or decimals from a Parquet column:
            # values no hash or output line can hold. An invalid record, not a crashed scan.
            return RecordResult(line_no, [f"a value cannot be written as canonical JSON ({exc})"], [])
        source_hash = hashlib.sha256(source_line).digest()
        findings: list[tuple[str, int, int, str, float, str, str | None]] = []
        per_field = []
        for path, text, detected in fields:
            spans = [Span(d.entity, d.start, d.end, d.score) for d in detected]
            if not spans:
                continue
            decided = decide_spans(spans, config.policy, config.classification)
            if not decided:
                continue
            per_field.append((path, text, decided))
            name = field_path_str(path)
            for d in decided:
                op = d.rule.operator.value if d.action == Action.REDACT else None
                findings.append(
                    (name, d.span.start, d.span.end, d.span.entity, round(d.span.score, 4), d.action.value, op)
                )
        action = record_action(d for _, _, decided in per_field for d in decided)
        result = RecordResult(line_no, [], findings, action.value, source_hash=source_hash, subject=subject)
        if action == Action.DROP_RECORD:
            return result
        if action == Action.ALLOW:
            out_line = source_line
        else:
            for path, text, decided in per_field:
                redacted = self.redactor.redact(text, decided)
                if redacted != text:
                    set_field(record, path, redacted)
            out_line = canonical_json(record)
        result.out_line = out_line + b"\n"
        result.out_hash = hashlib.sha256(out_line).digest() if out_line is not source_line else source_hash
        return result


# Worker-process state: set once by the pool initializer, because a ProcessPoolExecutor can only call
# module-level functions; each worker process owns exactly one processor.
_worker: RecordProcessor | None = None


def _init_worker(config: WorkerConfig, entries: list[RegistryEntry] | None) -> None:
    global _worker
    _worker = RecordProcessor(config, entries)


def _process_chunk(chunk: list[RawRecord]) -> list[RecordResult]:
    assert _worker is not None, "worker used before its initializer ran"
    return _worker.process_many(chunk)


def _chunks(items: Iterator[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _start_method() -> str:
    # fork is cheap (the parent's imported Presidio is shared) but unsafe once other threads may hold
    # locks (an asyncio service with its thread pool); then pay for spawn.
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


def process_records(
    raws: Iterator[RawRecord],
    config: WorkerConfig,
    workers: int,
    chunk_size: int,
    entries: list[RegistryEntry] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Iterator[RecordResult]:
    """Results in input order. `entries` (the loaded registry) is reused inline and by forked workers, which
    inherit it: compiling the registry's patterns is about a fifth of a second a process, on the scan's
    critical path. Spawned workers load their own (recognizers need not pickle). `on_start` is told how many
    processes the work actually got (`plan_workers`), before the first result."""
    chunks = _chunks(raws, chunk_size)
    # Up to one chunk per wanted worker is read ahead, so that a small file never starts idle processes
    # (a fork start method starts every pool process at the first submit).
    ahead = list(islice(chunks, max(1, min(workers, MAX_WORKERS))))
    workers = plan_workers(workers, cpus=available_cpus(), chunks=len(ahead))
    if on_start is not None:
        on_start(workers)
    if workers <= 1:
        processor = RecordProcessor(config, entries)
        for chunk in chain(ahead, chunks):
            yield from processor.process_many(chunk)
        return
    method = _start_method()
    context = multiprocessing.get_context(method)
    inherited = entries if method == "fork" else None
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(config, inherited)
    ) as pool:
        pending: deque[Future[list[RecordResult]]] = deque()
        for chunk in chain(ahead, chunks):
            pending.append(pool.submit(_process_chunk, chunk))
            if len(pending) >= workers * 3:  # bounded in flight: memory does not grow with file size
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
