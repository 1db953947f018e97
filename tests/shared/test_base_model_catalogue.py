"""One base-model catalogue: the trainer lists and stamps the licences the registry checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.models.bases import BaseModelError, list_bases, resolve_base
from shared.models.catalogue import BaseModelEntry, load_catalogue


def test_trainer_lists_exactly_the_catalogue(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    listed = list_bases(Settings(home=tmp_path / "home"))
    assert [b.name for b in listed] == catalogue.names()
    for listing in listed:
        entry = catalogue.bases[listing.name]
        assert listing.licence == entry.licence_label and listing.licence.startswith(entry.licence)
        assert listing.description == entry.description


def test_unknown_names_say_which_bases_are_known(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match=r"not a known base \(tiny, smollm2-135m-instruct\)"):
        resolve_base(str(tmp_path / "missing"), Settings(home=tmp_path / "home"))


def test_a_gguf_entry_must_name_its_file() -> None:
    with pytest.raises(ValueError, match="recipe gguf needs package and gguf_file"):
        BaseModelEntry(licence="MIT", source="s", recipe="gguf")
