"""Scanner test fixtures: the bundled policy and registry are loaded once per session (they are immutable)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from services.scanner.adapters.detector import Detector, RegistryEntry, load_registry
from services.scanner.adapters.policy_files import load_policy
from services.scanner.domain.policy import Policy
from services.scanner.engine.pipeline import ScanOptions

HASH_KEY = b"test-redaction-key-0123456789abcdef"


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy("default")


@pytest.fixture(scope="session")
def registry() -> list[RegistryEntry]:
    return load_registry()


@pytest.fixture(scope="session")
def detector(registry: list[RegistryEntry], policy: Policy) -> Detector:
    floors = {e: s for e in policy.entities() if (s := policy.min_score("internal", e)) is not None}
    return Detector(registry, set(floors), min_scores=floors)


@pytest.fixture
def options(policy: Policy) -> ScanOptions:
    # ner=False: expected findings must not depend on whether the optional spaCy model is installed.
    return ScanOptions(policy=policy, hash_key=HASH_KEY, workers=1, ner=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def app() -> typer.Typer:
    """The scanner's CLI as a typer app (tests/scanner/test_scanner_*cli.py)."""
    from services.scanner.entrypoints.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the app into `scan` itself
        """unused"""

    return app
