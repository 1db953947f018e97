"""Reading a job file (YAML) for `tunegate submit`: every problem is reported with the file, the field
path and why, before anything is published."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from pydantic import ValidationError

from services.registry.domain.intake import hyperparameter_problems
from shared.events.payloads import JobSpec


class JobFileError(ValueError):
    pass


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def local_path(uri: str, base_dir: Path) -> Path | None:
    """The local file a dataset URI names, or None for remote schemes (s3://, cas://...)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    # One-letter schemes are Windows drive letters, not URL schemes.
    if parsed.scheme and len(parsed.scheme) > 1:
        return None
    path = Path(uri).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_job_file(path: Path, *, requester: str, dataset: str | None = None) -> JobSpec:
    """Parse and validate; a local dataset must exist, its path becomes an absolute file:// URI and its
    sha256 is computed when absent (and checked when given). `dataset` overrides dataset.uri.

    The requester is the submitting principal (`--as`), never the file's say: a file that names another
    requester is refused, one that names none gets the principal's name."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise JobFileError(f"{path}: cannot read job file: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobFileError(f"{path}: not valid YAML: {exc}") from None
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
        section["uri"] = dataset
        section.pop("sha256", None)  # the digest belonged to the file being replaced
        document["dataset"] = section
    try:
        spec = JobSpec.model_validate(document)
    except ValidationError as exc:
        details = "; ".join(f"{_location(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise JobFileError(f"{path}: {details}") from None
    problems = hyperparameter_problems(spec)
    if problems:
        raise JobFileError(f"{path}: " + "; ".join(problems))

    local = local_path(spec.dataset.uri, path.parent)
    if local is None:
        return spec
    local = local.resolve()
    if not local.is_file():
        raise JobFileError(f"{path}: dataset.uri: local dataset {local} does not exist or is not a file")
    digest = file_sha256(local)
    if spec.dataset.sha256 is not None and spec.dataset.sha256 != digest:
        raise JobFileError(
            f"{path}: dataset.sha256: {spec.dataset.sha256} does not match {local} (its sha256 is {digest})"
        )
    return spec.model_copy(
        update={"dataset": spec.dataset.model_copy(update={"uri": local.as_uri(), "sha256": digest})}
    )
