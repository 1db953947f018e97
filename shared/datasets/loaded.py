"""Reading a scanned dataset artefact whole, for training and evaluation.

The fingerprint is recomputed from the bytes actually read (shared/datasets' definition: RFC 9162 Merkle
root over sha256(canonical_json(record))), so neither training nor evaluation proceeds on data other than
what was scanned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.datasets import DatasetError, RecordHasher, kind_of, parse_raw, validate_record
from shared.datasets.raw_files import detect_container, iter_raw


@dataclass(frozen=True)
class LoadedDataset:
    kind: str
    records: list[dict[str, Any]]
    fingerprint: str
    """Of every record read, held-out ones included: the scanner's fingerprint."""
    held_out: tuple[int, ...] = ()
    """Indices (in the file) of the records kept out of `records` for evaluation."""
    total_records: int | None = None


def load_dataset(path: Path) -> LoadedDataset:
    """Read every record (CAS files carry no extension: they are JSONL unless named otherwise)."""
    try:
        container = detect_container(path)
    except DatasetError:
        container = "jsonl"
    hasher = RecordHasher()
    records: list[dict[str, Any]] = []
    kind: str | None = None
    for raw in iter_raw(path, container):
        record, problem = parse_raw(raw)
        if record is None:
            raise DatasetError(f"dataset line {raw.line_no}: {problem}")
        if kind is None:
            kind = kind_of(record)
            if kind is None:
                raise DatasetError(f"dataset line {raw.line_no}: cannot tell the record format from its keys "
                                   f"{sorted(record)}")
        issues = validate_record(record, kind)
        if issues:
            raise DatasetError(f"dataset line {raw.line_no}: {'; '.join(str(i) for i in issues)}")
        hasher.add(record)
        records.append(record)
    return LoadedDataset(kind=kind or "text", records=records, fingerprint=hasher.hexdigest())
