"""The trainer reads only the bytes the scanner passed: from the store, by strict content address. These
refusals happen before any base model is resolved, so they need no model and no training."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from services.trainer.bootstrap import build_deps
from services.trainer.handlers import Refusal, TrainerHandlers
from shared.config import Settings
from shared.events.payloads import ArtifactRef, MethodSpec, TrainingRequested


@pytest.fixture
def handlers(tmp_path: Path) -> TrainerHandlers:
    # The Redis client is never used on these paths (no lease is taken before the data is checked).
    deps = build_deps(Settings(home=tmp_path / "home"), redis.Redis(), worker_id="w", lease_ttl_ms=1500,
                      heartbeat_s=0.2)

    def no_base(name: str) -> None:
        raise AssertionError("the dataset must be refused before the base model is resolved")

    deps.resolve_base = no_base  # type: ignore[assignment]
    return TrainerHandlers(deps)


def _request(dataset: ArtifactRef) -> TrainingRequested:
    return TrainingRequested(job_id="job-1", base_model="tiny", method=MethodSpec(), dataset=dataset,
                             fingerprint="0" * 64, scan_verdict="clean", approvers=["a"])


def test_missing_tampered_and_uncontained_datasets_are_refused(handlers: TrainerHandlers, tmp_path: Path) -> None:
    stored = handlers.deps.artifacts.put_bytes(b'{"text": "a"}\n')
    cases = [
        ("cas://sha256/" + "a" * 64, "a" * 64, "dataset not found"),
        (stored.uri, "f" * 64, "dataset bytes changed since the scan"),
        ("cas://sha256/../../etc/shadow", "a" * 64, "64 lowercase hex"),
        ((tmp_path / "raw.jsonl").as_uri(), "a" * 64, "only content-addressed"),
    ]
    for uri, sha256, reason in cases:
        with pytest.raises(Refusal, match=reason):
            handlers._prepare(_request(ArtifactRef(uri=uri, sha256=sha256)))


@pytest.mark.parametrize("job_id", ["../../x", "/tmp/elsewhere"])
def test_a_job_id_never_becomes_a_path_outside_the_home(handlers: TrainerHandlers, job_id: str) -> None:
    with pytest.raises(ValueError, match="job id"):
        handlers.deps.workdir(job_id)
