"""Gateway policy fixtures: the real detection engine (the scanner's registry, no NER: the property tests
run the detector thousands of times) and the bundled policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.adapters.dlp import GatewayDetector
from services.gateway.domain.policy import PolicySet
from services.gateway.settings import CONFIG_DIR

BUNDLED_POLICIES = CONFIG_DIR / "policies.yaml"


@pytest.fixture(scope="session")
def detector() -> GatewayDetector:
    return GatewayDetector.build(ner=False)


@pytest.fixture(scope="session")
def bundled() -> PolicySet:
    return PolicySet.load(Path(BUNDLED_POLICIES))
