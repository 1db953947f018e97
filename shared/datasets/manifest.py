"""The dataset manifest: the data owner's declaration that travels beside a dataset file (YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.yaml_models import load_yaml_model, parse_yaml_model

Classification = Literal["public", "internal", "confidential", "restricted"]
LegalBasis = Literal[
    "none", "consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"
]


MANIFEST_SUFFIXES = (".manifest.yaml", ".manifest.yml")
"""A dataset's manifest sits beside it: `<dataset file name><suffix>`."""
MAX_FIELD_CHARS = 8_000


class ManifestError(ValueError):
    pass


class DatasetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=MAX_FIELD_CHARS)
    classification: Classification = "internal"
    legal_basis: LegalBasis = Field(default="none", description="GDPR Art. 6 basis for processing.")
    consent_covers_training: bool = Field(default=False, description="Data subjects consented to model training.")
    subject_field: str | None = Field(
        default=None,
        max_length=200,
        description="Dotted path of the field identifying each record's data subject (erasure).",
    )
    licence: str = Field(default="", max_length=MAX_FIELD_CHARS)
    provenance: str = Field(default="", max_length=MAX_FIELD_CHARS)
    owner: str = Field(default="", max_length=200)

    def personal_data_allowed(self) -> bool:
        """Art. 6: some basis must exist, and a consent basis must actually cover model training."""
        if self.legal_basis == "none":
            return False
        return self.legal_basis != "consent" or self.consent_covers_training

    def personal_data_refusal(self) -> str:
        if self.legal_basis == "none":
            return "the manifest declares no legal basis for processing personal data"
        return "the legal basis is consent but the manifest says consent does not cover model training"


def find_manifest(dataset: Path) -> Path | None:
    """`<dataset>.manifest.yaml` (or .yml) beside the dataset, if present. A path without a file name ('', '.',
    '/') names no file, so nothing is beside it: reading it as a dataset then says what it is."""
    if not dataset.name:
        return None
    for suffix in MANIFEST_SUFFIXES:
        candidate = dataset.with_name(dataset.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def load_manifest(path: Path) -> DatasetManifest:
    return load_yaml_model(path, DatasetManifest, "manifest", ManifestError)


def parse_manifest(text: str, source: str) -> DatasetManifest:
    """A manifest whose bytes were already read (under the dataset confinement rules)."""
    return parse_yaml_model(text, source, DatasetManifest, "manifest", ManifestError)
