"""Planting a job's canaries into its dataset before the scan, so they meet the same detection and
redaction as every other record: a canary shaped like a secret is redacted like one, and one the scanner
does not flag survives into training, where the evaluator measures how well the model memorised it.

The planted copy is written as JSONL (records re-serialised canonically; lines that do not parse are
copied as they are, so the scan still reports them). Memory stays flat: two passes over the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.canonical import canonical_json
from shared.datasets import DatasetError, detect_container, iter_raw, kind_of, parse_raw
from shared.evaluation.canaries import canary_record, derive_canaries, planted_positions, shape_of
from shared.evaluation.options import CanarySpec

CANARY_SUBJECT = "tunegate-canary"


def _with_subject(record: dict[str, Any], subject_field: str | None) -> dict[str, Any]:
    """A manifest that names a subject field requires it on every record: canaries get a synthetic one."""
    if not subject_field:
        return record
    node = record
    parts = subject_field.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = CANARY_SUBJECT
    return record


def plant_canaries(source: Path, target: Path, *, job_id: str, spec: CanarySpec, key: bytes,
                   subject_field: str | None = None) -> int:
    """Write `source` with the job's canaries inserted to `target` (JSONL); returns the records planted."""
    try:
        container = detect_container(source)
    except DatasetError:
        container = "jsonl"
    kind = None
    total = 0
    for raw in iter_raw(source, container):
        total += 1
        if kind is None:
            record, _ = parse_raw(raw)
            kind = kind_of(record) if record is not None else None
    if kind is None:
        raise DatasetError("canaries requested but no record of the dataset has a recognisable format")
    if kind == "preference":
        raise DatasetError("canaries cannot be planted into preference records (chat, prompt_completion, text)")
    shape = shape_of(spec)
    secrets = derive_canaries(key, job_id, spec)
    slots = planted_positions(total, spec, seed=f"plant|{job_id}")
    planted = 0

    def write_canaries(handle: Any, position: int) -> int:
        for index in slots.get(position, []):
            record = _with_subject(canary_record(kind, shape, secrets[index]), subject_field)
            handle.write(canonical_json(record) + b"\n")
        return len(slots.get(position, []))

    with target.open("wb") as handle:
        for position, raw in enumerate(iter_raw(source, container)):
            planted += write_canaries(handle, position)
            if raw.problem is not None:
                # An over-long line was never read and an over-wide CSV row lost its extra cells: copying
                # either would hand the scan a different, maybe valid, record in place of the invalid one.
                raise DatasetError(f"line {raw.line_no}: {raw.problem}")
            record, _ = parse_raw(raw)
            if record is None and isinstance(raw.raw, bytes):
                handle.write(raw.raw.rstrip(b"\n") + b"\n")
            else:
                handle.write(canonical_json(record if record is not None else raw.raw) + b"\n")
        planted += write_canaries(handle, total)
    return planted
