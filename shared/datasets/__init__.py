"""Training-dataset formats shared by the scanner (which gates them) and the trainer (which consumes them).

Readers stream records with their line numbers, validation names the line and the reason, and the dataset
fingerprint is the RFC 9162 Merkle root over per-record hashes, so anyone holding a record can prove whether
it was part of a fingerprinted training set."""

from shared.datasets.fingerprint import RecordHasher, dataset_fingerprint, record_hash
from shared.datasets.formats import (
    RECORD_KINDS,
    DatasetRecord,
    FieldPath,
    ValidationIssue,
    detect_format,
    field_path_str,
    get_field,
    iter_records,
    kind_of,
    parse_raw,
    set_field,
    text_fields,
    validate_dataset,
    validate_record,
)
from shared.datasets.manifest import DatasetManifest, ManifestError, find_manifest, load_manifest
from shared.datasets.raw_files import CONTAINERS, DatasetError, RawRecord, detect_container, iter_raw

__all__ = [
    "CONTAINERS",
    "RECORD_KINDS",
    "DatasetError",
    "DatasetManifest",
    "DatasetRecord",
    "FieldPath",
    "ManifestError",
    "RawRecord",
    "RecordHasher",
    "ValidationIssue",
    "dataset_fingerprint",
    "detect_container",
    "detect_format",
    "field_path_str",
    "find_manifest",
    "get_field",
    "iter_raw",
    "iter_records",
    "kind_of",
    "load_manifest",
    "parse_raw",
    "record_hash",
    "set_field",
    "text_fields",
    "validate_dataset",
    "validate_record",
]
