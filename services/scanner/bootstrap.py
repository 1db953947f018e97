"""Wiring: artefact store, redaction key and policy loader -> handlers -> ServiceDefinition."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from services.scanner.adapters.anonymizer import load_or_create_hash_key
from services.scanner.adapters.ner import require_ner_model
from services.scanner.adapters.policy_files import load_policy
from services.scanner.adapters.tables import METADATA
from services.scanner.handlers import ScannerDeps, build_handlers
from shared.config import Settings
from shared.datasets.reference import DataAccess
from shared.evaluation.canaries import canary_key
from shared.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    from shared.bus.definition import ServiceDefinition


def build_deps(settings: Settings) -> ScannerDeps:
    scratch = settings.path("tmp", "scanner", ".keep").parent
    artifacts = ArtifactStore(settings.path("artifacts", ".keep").parent)
    return ScannerDeps(
        artifacts=artifacts,
        data=DataAccess.from_settings(settings, artifacts),
        hash_key=load_or_create_hash_key(settings.path("keys", "scanner-redaction.key")),
        policy_loader=load_policy,
        scratch=scratch,
        canary_key=partial(canary_key, settings),
    )


def build(settings: Settings) -> ServiceDefinition:
    from shared.bus.definition import ServiceDefinition

    # Load the default policy now: a broken bundled policy should stop the service, not fail every scan.
    load_policy("default")
    deps = build_deps(settings)
    if deps.ner:
        require_ner_model()  # likewise a missing NER model: NerUnavailable names the package to install
    return ServiceDefinition(name="scanner", handlers=build_handlers(deps), metadata=[METADATA])
