"""RLHF governed at the registry: an rlhf job owes why_not_dpo; it trains only against an approved reward-model
version (intake rejects an unknown or unapproved one, approval answers 409 once it is retired); the version's
artefact travels in training.requested and is a dependency in the policy's AIBOM; a reward model is never
deployed to the gateway. A policy may start from an approved LoRA SFT version on the same base with the job's
LoRA shape: its artefact travels in training.requested too and it is the policy's other version dependency."""

from __future__ import annotations

from typing import Any

import pytest

from services.registry.aibom.schema import validate_aibom
from services.registry.domain.reward_models import VersionOnRecord, policy_problem, reward_model_problem
from shared.events.evaluation import EvaluationCompleted, GateVerdict
from shared.events.payloads import ArtifactRef, JobSpec, ScanDetectors, TrainingCompleted
from tests.registry.registry_support import World, bearer, make_spec, sha
from tests.registry.test_registry_evaluation import SUITES, from_evaluator, report_refs

RM_VERSION = "order-rm.v1"
RM_ARTIFACT = ArtifactRef(uri="cas://sha256/" + sha("reward model"), sha256=sha("reward model"))
POLICY_ARTIFACT = ArtifactRef(uri="cas://sha256/" + sha("policy"), sha256=sha("policy"))
SFT_VERSION = "order-sft.v1"
SFT_ARTIFACT = ArtifactRef(uri="cas://sha256/" + sha("sft adapter"), sha256=sha("sft adapter"))
LORA_SHAPE = {"lora_r": 16, "lora_alpha": 32.0, "lora_target_modules": [
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}  # the defaults


def spec_with(method: dict[str, Any], model_name: str, **use_case: Any) -> JobSpec:
    data = make_spec(**use_case).model_dump(mode="json")
    return JobSpec.model_validate({**data, "method": method, "model_name": model_name,
                                   "dataset": {**data["dataset"], "format": "preference"}})


def rlhf_spec(policy_version: str | None = None, **use_case: Any) -> JobSpec:
    method = {"kind": "rlhf", "rlhf": {"reward_model_version": RM_VERSION, "policy_version": policy_version,
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
    found = VersionOnRecord(RM_VERSION, "approved", "reward_model", "tiny", RM_ARTIFACT.model_dump())
    assert reward_model_problem(spec, found) is None
    assert "trained by method sft" in str(reward_model_problem(spec, VersionOnRecord(
        RM_VERSION, "approved", "sft", "tiny", {})))
    assert "must share the policy's base" in str(reward_model_problem(spec, VersionOnRecord(
        RM_VERSION, "approved", "reward_model", "smollm2-135m-instruct", {})))


async def approved_version(world: World, approver: Any, job_id: str, spec: JobSpec, artifact: ArtifactRef,
                           version: str) -> None:
    await through_scan(world, job_id, spec)
    assert world.decide(job_id, approver, decision="approve").status_code == 200
    await trained_and_evaluated(world, job_id, spec, artifact)
    approved = world.client.post(f"/models/{version}/approvals", json={}, headers=bearer(approver))
    assert approved.status_code == 200, approved.text


@pytest.mark.anyio
async def test_rlhf_starts_from_an_approved_sft_version_and_depends_on_it(world: World) -> None:
    bob, dora = world.principal("bob", "approver"), world.principal("dora", "deployer")
    await approved_version(world, bob, "job_rm", spec_with({"kind": "reward_model"}, "order-rm"), RM_ARTIFACT,
                           RM_VERSION)
    await world.submit(rlhf_spec(SFT_VERSION), "job_early")
    assert f"method.rlhf.policy_version: {SFT_VERSION} is not a registered model version" in rejections(
        world, "job_early")

    sft_spec = spec_with({"kind": "sft"}, "order-sft")
    sft_spec = sft_spec.model_copy(update={"dataset": sft_spec.dataset.model_copy(update={"format": "chat"})})
    await through_scan(world, "job_sft", sft_spec)
    assert world.decide("job_sft", bob, decision="approve").status_code == 200
    await trained_and_evaluated(world, "job_sft", sft_spec, SFT_ARTIFACT)
    await world.submit(rlhf_spec(SFT_VERSION), "job_candidate")
    assert any(f"{SFT_VERSION} is candidate; an rlhf policy starts only from an approved version" in r
               for r in rejections(world, "job_candidate"))
    assert world.client.post(f"/models/{SFT_VERSION}/approvals", json={}, headers=bearer(bob)).status_code == 200

    await through_scan(world, "job_policy", rlhf_spec(SFT_VERSION))
    await through_scan(world, "job_late", rlhf_spec(SFT_VERSION))
    assert rejections(world, "job_policy") == []
    assert world.decide("job_policy", bob, decision="approve").status_code == 200
    [requested] = [e for e in world.runtime.of_type("training.requested") if e.subject == "job_policy"]
    assert requested.payload["policy"] == SFT_ARTIFACT.model_dump(mode="json")
    assert requested.payload["reward_model"] == RM_ARTIFACT.model_dump(mode="json")

    retired = world.client.post(f"/models/{SFT_VERSION}/retirement", json={"reason": "superseded"},
                                headers=bearer(dora))
    assert retired.status_code == 200
    late = world.decide("job_late", bob, decision="approve")
    assert late.status_code == 409 and f"policy_version: {SFT_VERSION} is retired" in late.json()["detail"]

    await trained_and_evaluated(world, "job_policy", rlhf_spec(SFT_VERSION), POLICY_ARTIFACT)
    bom = world.get("/models/order-policy.v1/aibom").json()
    assert validate_aibom(bom) == []
    [start] = [c for c in bom["components"] if c["bom-ref"] == f"start-policy:{SFT_VERSION}"]
    assert start["hashes"] == [{"alg": "SHA-256", "content": SFT_ARTIFACT.sha256}]
    assert {"name": "tunegate:role", "value": "start_policy"} in start["properties"]
    [policy] = [d for d in bom["dependencies"] if d["ref"] == bom["metadata"]["component"]["bom-ref"]]
    assert {f"start-policy:{SFT_VERSION}", f"reward-model:{RM_VERSION}"} <= set(policy["dependsOn"])


def sft_on_record(**changes: Any) -> VersionOnRecord:
    fields: dict[str, Any] = {"version_id": SFT_VERSION, "state": "approved", "method_kind": "sft",
                              "base_model": "tiny", "artifact": SFT_ARTIFACT.model_dump(), "adapter": "lora",
                              "lora_shape": LORA_SHAPE}
    return VersionOnRecord(**(fields | changes))


def test_the_starting_version_must_be_a_lora_sft_version_on_the_base_with_the_jobs_lora_shape() -> None:
    spec = rlhf_spec(SFT_VERSION)
    assert policy_problem(spec, sft_on_record()) is None
    assert policy_problem(spec, sft_on_record(state="deployed")) is None  # approved, then served: still approved
    assert "an rlhf policy starts from a LoRA sft version" in str(policy_problem(spec, sft_on_record(
        method_kind="dpo")))
    assert "trained by method sft (full)" in str(policy_problem(spec, sft_on_record(adapter="full")))
    assert "the starting version must be on the job's base" in str(policy_problem(spec, sft_on_record(
        base_model="smollm2-135m-instruct")))
    shape = str(policy_problem(spec, sft_on_record(lora_shape=LORA_SHAPE | {"lora_r": 8})))
    assert "LoRA shape must match: lora_r 16 (the version has 8)" in shape
    assert policy_problem(rlhf_spec(), None) is None  # no starting version: the policy starts from the base


def test_a_starting_version_needs_a_lora_rlhf_job() -> None:
    with pytest.raises(ValueError, match=r"method\.adapter lora"):
        rlhf_spec().method.model_validate({"kind": "rlhf", "adapter": "full", "rlhf": {
            "policy_version": SFT_VERSION, "reward_model_version": RM_VERSION}})
