"""Reading a job file (YAML) for `tunegate submit`: every problem is reported with the file, the field
path and why, before anything is published."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from services.registry.domain.intake import hyperparameter_problems
from shared.config import Settings
from shared.datasets.reference import DataAccess, DatasetRef, DatasetRefError, dataset_mismatch, hash_dataset
from shared.events.payloads import DatasetSpec, JobSpec
from shared.validation import describe_validation_error
from shared.yaml_models import load_yaml_document

MAX_JOB_FILE_BYTES = 256 * 1024
"""A job file is a page of YAML; anything this large is a mistake or an attack on the registry's storage."""


class JobFileError(ValueError):
    pass


def load_job_file(
    path: Path, *, requester: str, dataset: str | None = None, settings: Settings | None = None
) -> JobSpec:
    """Parse and validate; a local dataset must lie under the data roots, its path becomes an absolute
    file:// URI and its sha256 is computed when absent (and checked when given). `dataset` overrides
    dataset.uri.

    The requester is the submitting principal (`--as`), never the file's say: a file that names another
    requester is refused, one that names none gets the principal's name."""
    document = load_yaml_document(path, "job file", JobFileError, max_bytes=MAX_JOB_FILE_BYTES)
    if not isinstance(document, dict):
        raise JobFileError(f"{path}: a job file is a YAML mapping (use_case, base_model, dataset, ...)")
    named = document.get("requester")
    if named is not None and named != requester:
        raise JobFileError(
            f"{path}: requester: the file names {named!r} but the job is submitted as {requester!r}; the requester "
            "is the signing principal (`--as`), so drop the field"
        )
    document["requester"] = requester
    if dataset is not None:
        section = document.get("dataset")
        section = dict(section) if isinstance(section, dict) else {}
        try:
            # Relative to where the command runs, as any path typed on a command line.
            section["uri"] = DatasetRef.parse(dataset, base_dir=Path.cwd()).canonical_uri()
        except DatasetRefError as exc:
            raise JobFileError(f"--dataset: {exc}") from None
        section.pop("sha256", None)  # the digest belonged to the file being replaced
        document["dataset"] = section
    try:
        spec = JobSpec.model_validate(document)
    except ValidationError as exc:
        raise JobFileError(f"{path}: {describe_validation_error(exc)}") from None
    problems = hyperparameter_problems(spec)
    if problems:
        raise JobFileError(f"{path}: " + "; ".join(problems))
    return spec.model_copy(update={"dataset": _pinned_dataset(spec, path, settings or Settings())})


def _pinned_dataset(spec: JobSpec, path: Path, settings: Settings) -> DatasetSpec:
    """The dataset section with a canonical URI and the sha256 of the bytes the scanner will be asked to judge."""
    declared = spec.dataset.sha256
    try:
        ref = DatasetRef.parse(spec.dataset.uri, base_dir=path.parent.resolve())
        if ref.digest is not None:
            actual = ref.digest  # a content address is its own digest; the scanner reads it from the store
        else:
            actual, _size = hash_dataset(ref, DataAccess.from_settings(settings))
    except DatasetRefError as exc:
        raise JobFileError(f"{path}: dataset.uri: {exc}") from None
    reason = dataset_mismatch(declared, actual, expected_from="dataset.sha256", actual_from=ref.uri)
    if reason:
        raise JobFileError(f"{path}: dataset.sha256: {reason}")
    return spec.dataset.model_copy(update={"uri": ref.canonical_uri(), "sha256": actual})
