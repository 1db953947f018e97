"""Trainer fixtures: the `tiny` base built once per session, and small generated task datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.trainer.adapters.base_models import BaseModelInfo, resolve_base
from shared.config import Settings


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TUNEGATE_TEST_MODELS_HOME reuses a built `tiny` across sessions (handy while iterating)."""
    given = os.environ.get("TUNEGATE_TEST_MODELS_HOME")
    return Path(given) if given else tmp_path_factory.mktemp("models-home")


@pytest.fixture(scope="session")
def tiny_base(models_home: Path) -> BaseModelInfo:
    return resolve_base("tiny", Settings(home=models_home))

