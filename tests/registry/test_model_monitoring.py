"""Recurring monitoring's reports in the registry: model.drift.detected / model.memorisation.detected flag the
version (GET /models/{id}, `tunegate models show`), and per the policy's `monitoring:` section the version is
retired as well (model.retired, its alias released); an unknown version changes nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from services.registry.domain.policy import MonitoringPolicy
from services.registry.entrypoints.models_cli import print_version
from services.registry.handlers import build_handlers
from services.registry.model_schemas import ModelVersionView
from shared.events.envelope import Envelope
from shared.storage.artifacts import ArtifactStore
from tests.registry.registry_support import World
from tests.registry.test_model_versions import VERSION, deployer, emitted, post, registered

BLOCK_RATE = {"metric": "block_rate", "statistic": "chi_square", "value": 41.2, "threshold": 0.01,
              "p_value": 1e-9, "baseline": 0.02, "current": 0.3}
EXTRACTION = {"metric": "memorisation.extraction_rate", "statistic": "increase", "value": 0.2, "threshold": 0.05,
              "baseline": 0.0, "current": 0.2}


def report(event_type: str, version_id: str = VERSION, **payload: Any) -> Envelope:
    return Envelope(type=event_type, producer="evaluator", actor="system:evaluator", subject=version_id,
                    payload={"version_id": version_id, **payload})


def drift(version_id: str = VERSION) -> Envelope:
    return report("model.drift.detected", version_id, source="production", findings=[BLOCK_RATE],
                  window={"size": 200, "baseline_size": 200, "baseline_established_at": "2026-01-05T09:00:00+00:00"})


def memorised() -> Envelope:
    return report("model.memorisation.detected", evaluation_id="ev_r1", baseline_evaluation_id="ev_1",
                  findings=[EXTRACTION])


async def deployed(world: World) -> str:
    bob = await registered(world, "ev-1")
    dora = deployer(world)
    assert post(world, f"/models/{VERSION}/approvals", bob).status_code == 200
    assert post(world, f"/models/{VERSION}/deployments", dora, alias="support-triage",
                tenants=["acme"]).status_code == 200
    return dora


def with_policy(world: World, **monitoring: str) -> dict[Any, Any]:
    policy = world.governance.policy.model_copy(update={"monitoring": MonitoringPolicy(**monitoring)})
    governance = replace(world.governance, policy=policy)
    return build_handlers(governance, ArtifactStore(world.settings.home_dir / "artifacts"))


@pytest.mark.anyio
async def test_drift_flags_the_version_and_the_default_policy_keeps_it_serving(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    await deployed(world)
    assert await world.runtime.deliver(world.handlers, drift()) == []  # nothing to announce: a flag only
    view = world.get(f"/models/{VERSION}").json()
    assert view["state"] == "deployed"
    [flag] = view["monitoring_flags"]
    assert flag["kind"] == "drift" and flag["source"] == "production" and flag["action"] == "flag"
    assert flag["summary"] == "block_rate chi_square 41.2 (p 1e-09 < 0.01)"
    print_version(ModelVersionView.model_validate(view))
    assert "FLAGGED" in capsys.readouterr().out
    [listed] = world.get("/models").json()
    assert listed["monitoring_flag_count"] == 1 and view["monitoring_flag_count"] == 1


@pytest.mark.anyio
async def test_memorisation_retires_per_the_default_policy_and_releases_the_alias(world: World) -> None:
    await deployed(world)
    await world.runtime.deliver(world.handlers, memorised())
    [retired] = emitted(world, "model.retired")
    assert retired["version_id"] == VERSION and retired["alias"] == "support-triage"
    assert "memorisation detected" in retired["reason"] and "memorisation.extraction_rate" in retired["reason"]
    view = world.get(f"/models/{VERSION}").json()
    assert view["state"] == "retired" and view["monitoring_flags"][0]["action"] == "retire"
    assert world.get("/aliases").json()[0]["version_id"] is None
    # ... and opens a serious incident (EU AI Act Art. 73: 15 days to report) linked to the report
    [incident] = emitted(world, "incident.opened")
    assert incident["severity"] == "serious" and incident["affected_versions"] == [VERSION]
    assert incident["opened_by"] == "system:registry" and len(incident["audit_entries"]) == 1
    assert incident["report_deadline"] is not None
    # A later report on the retired version is recorded, and retires nothing twice.
    await world.runtime.deliver(world.handlers, memorised())
    assert len(emitted(world, "model.retired")) == 1
    assert len(world.get(f"/models/{VERSION}").json()["monitoring_flags"]) == 2


@pytest.mark.anyio
async def test_a_policy_can_retire_on_drift_or_only_flag_memorisation(world: World) -> None:
    await deployed(world)
    await world.runtime.deliver(with_policy(world, on_memorisation="flag", memorisation_incident=None), memorised())
    assert emitted(world, "model.retired") == [] and emitted(world, "incident.opened") == []
    await world.runtime.deliver(with_policy(world, on_drift="retire", drift_incident="other"), drift())
    [retired] = emitted(world, "model.retired")
    assert "drift detected (production" in retired["reason"]
    [incident] = emitted(world, "incident.opened")
    assert incident["severity"] == "other" and incident["report_deadline"] is None  # tracked, no report due


def test_a_monitoring_policy_names_a_known_incident_severity() -> None:
    with pytest.raises(ValueError, match="unknown incident severity 'grave'"):
        MonitoringPolicy(drift_incident="grave")


@pytest.mark.anyio
async def test_a_report_on_an_unknown_version_changes_nothing(world: World) -> None:
    await deployed(world)
    assert await world.runtime.deliver(world.handlers, drift("other-model.v3")) == []
    assert world.get(f"/models/{VERSION}").json()["monitoring_flags"] == []
