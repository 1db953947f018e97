"""RLHF governed at the registry: an rlhf job owes why_not_dpo; it trains only against an approved reward-model
version (intake rejects an unknown or unapproved one, approval answers 409 once it is retired); the version's
artefact travels in training.requested and is a dependency in the policy's AIBOM; a reward model is never
deployed to the gateway."""

from __future__ import annotations

from typing import Any

import pytest

from services.registry.aibom.schema import validate_aibom
from services.registry.domain.reward_models import RewardModelOnRecord, reward_model_problem
from shared.events.evaluation import EvaluationCompleted, GateVerdict
from shared.events.payloads import ArtifactRef, JobSpec, ScanDetectors, TrainingCompleted
from tests.registry.registry_support import World, bearer, make_spec, sha
from tests.registry.test_registry_evaluation import SUITES, from_evaluator, report_refs

RM_VERSION = "order-rm.v1"
RM_ARTIFACT = ArtifactRef(uri="cas://sha256/" + sha("reward model"), sha256=sha("reward model"))
POLICY_ARTIFACT = ArtifactRef(uri="cas://sha256/" + sha("policy"), sha256=sha("policy"))


def spec_with(method: dict[str, Any], model_name: str, **use_case: Any) -> JobSpec:
    data = make_spec(**use_case).model_dump(mode="json")
    return JobSpec.model_validate({**data, "method": method, "model_name": model_name,
                                   "dataset": {**data["dataset"], "format": "preference"}})


def rlhf_spec(**use_case: Any) -> JobSpec:
    method = {"kind": "rlhf", "rlhf": {"reward_model_version": RM_VERSION,
                                       "reward_functions": [{"kind": "keywords", "keywords": ["order"]}]}}
    return spec_with(method, "order-policy", **{"why_not_dpo": "The reward must also reward valid JSON.",
                                                **use_case})


def rejections(world: World, job_id: str) -> list[str]:
    return [r for e in world.runtime.of_type("job.rejected") if e.subject == job_id for r in e.payload["reasons"]]


async def through_scan(world: World, job_id: str, spec: JobSpec) -> None:
    await world.submit(spec, job_id)
    await world.scanned(job_id, detectors=ScanDetectors(ner=True))


async def trained_and_evaluated(world: World, job_id: str, spec: JobSpec, artifact: ArtifactRef) -> None:
    completed = TrainingCompleted(job_id=job_id, artifact=artifact, base_model="tiny", method=spec.method,
                                  data_fingerprint=sha("fingerprint"))
    await world.runtime.deliver(world.handlers, from_evaluator("training.completed", completed, producer="trainer")
                                .model_copy(update={"subject": job_id}))
    report, html = report_refs()
    evaluated = EvaluationCompleted(
        job_id=job_id, evaluation_id=f"ev-{job_id}", artifact=artifact, base_model="tiny",
        verdict=GateVerdict(policy="p", risk_tier="minimal", passed=True, failures=[], checked=3, complete=True),
        suites=SUITES, report=report, report_html=html,
    )
    await world.runtime.deliver(world.handlers, from_evaluator("evaluation.completed", evaluated)
                                .model_copy(update={"subject": job_id}))


@pytest.mark.anyio
async def test_rlhf_trains_only_against_an_approved_reward_model(world: World) -> None:
    bob, dora = world.principal("bob", "approver"), world.principal("dora", "deployer")
    await world.submit(rlhf_spec(why_not_dpo=" "), "job_early")
    early = rejections(world, "job_early")
    assert any("is not a registered model version" in r for r in early)
    assert any(r.startswith("use_case.why_not_dpo: an rlhf job must say why DPO") for r in early)

    rm_spec = spec_with({"kind": "reward_model"}, "order-rm")
    await through_scan(world, "job_rm", rm_spec)
    assert world.decide("job_rm", bob, decision="approve").status_code == 200
    await trained_and_evaluated(world, "job_rm", rm_spec, RM_ARTIFACT)
    assert world.get(f"/models/{RM_VERSION}").json()["state"] == "candidate"
    await world.submit(rlhf_spec(), "job_candidate")
    assert any("is candidate; a reward model must be approved" in r for r in rejections(world, "job_candidate"))

    headers = bearer(bob)
    assert world.client.post(f"/models/{RM_VERSION}/approvals", json={}, headers=headers).status_code == 200
    deploy = world.client.post(f"/models/{RM_VERSION}/deployments", json={"alias": "rm", "tenants": ["acme"]},
                               headers=bearer(dora))
    assert deploy.status_code == 409 and "is a reward model" in deploy.json()["detail"]

    await through_scan(world, "job_policy", rlhf_spec())
    await through_scan(world, "job_late", rlhf_spec())
    assert world.decide("job_policy", bob, decision="approve").status_code == 200
    [requested] = [e for e in world.runtime.of_type("training.requested") if e.subject == "job_policy"]
    assert requested.payload["reward_model"] == RM_ARTIFACT.model_dump(mode="json")

    retired = world.client.post(f"/models/{RM_VERSION}/retirement", json={"reason": "labels found inconsistent"},
                                headers=bearer(dora))
    assert retired.status_code == 200
    late = world.decide("job_late", bob, decision="approve")
    assert late.status_code == 409 and f"{RM_VERSION} is retired" in late.json()["detail"]

    await trained_and_evaluated(world, "job_policy", rlhf_spec(), POLICY_ARTIFACT)
    bom = world.get("/models/order-policy.v1/aibom").json()
    assert validate_aibom(bom) == []
    [reward] = [c for c in bom["components"] if c["bom-ref"] == f"reward-model:{RM_VERSION}"]
    assert reward["hashes"] == [{"alg": "SHA-256", "content": RM_ARTIFACT.sha256}]
    [policy] = [d for d in bom["dependencies"] if d["ref"] == bom["metadata"]["component"]["bom-ref"]]
    assert f"reward-model:{RM_VERSION}" in policy["dependsOn"]
    assert bom["metadata"]["component"]["modelCard"]["modelParameters"]["approach"]["type"] == "reinforcement-learning"


def test_a_reward_model_must_share_the_policys_base_and_be_one() -> None:
    spec = rlhf_spec()
    found = RewardModelOnRecord(RM_VERSION, "approved", "reward_model", "tiny", RM_ARTIFACT.model_dump())
    assert reward_model_problem(spec, found) is None
    assert "trained by method sft" in str(reward_model_problem(spec, RewardModelOnRecord(
        RM_VERSION, "approved", "sft", "tiny", {})))
    assert "must share the policy's base" in str(reward_model_problem(spec, RewardModelOnRecord(
        RM_VERSION, "approved", "reward_model", "smollm2-135m-instruct", {})))
