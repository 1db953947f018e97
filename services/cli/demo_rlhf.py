"""The RLHF part of `tunegate demo`, after the release SFT version exists: a reward model trained on rated pairs
of replies to the demo's task (`tunegate demo-dataset --preferences`), approved as a job, evaluated by the
reward_model suite and approved as a version; then an rlhf job that starts from the release SFT version and
is optimised with GRPO against that reward model and a JSON-schema rule, approved with its `why_not_dpo`
justification reviewed, evaluated by the reward_hacking suite, and registered with both versions as
dependencies in its AIBOM. Every step is the `tunegate` command a user would type."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from services.cli.demo import Demo

EXAMPLES = Path(__file__).resolve().parents[1] / "registry" / "examples"
REWARD_MODEL_JOB_FILE = EXAMPLES / "demo_job_reward_model.yaml"
RLHF_JOB_FILE = EXAMPLES / "demo_job_rlhf.yaml"
"""A template: the demo writes it out with the versions it registered in method.rlhf."""
PREFERENCES_FILE = "order-preferences.jsonl"


@dataclass
class RlhfTour:
    reward_model_job: dict[str, Any] = field(default_factory=dict)
    reward_model_version: dict[str, Any] = field(default_factory=dict)
    rlhf_job: dict[str, Any] = field(default_factory=dict)
    rlhf_version: dict[str, Any] = field(default_factory=dict)
    aibom_dependencies: list[str] = field(default_factory=list)
    """What the policy's AIBOM says its model depends on (bom-refs)."""
    seconds: float = 0.0
    """How long this part of the demo took."""


def rlhf_job_file(target: Path, *, policy_version: str, reward_model_version: str) -> Path:
    """The demo's rlhf job: the template with the release SFT version and the reward-model version filled in."""
    document = yaml.safe_load(RLHF_JOB_FILE.read_text())
    options = document["method"]["rlhf"]
    options["policy_version"], options["reward_model_version"] = policy_version, reward_model_version
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def rlhf_tour(demo: Demo, *, policy_version: str, dataset: Path, requester: str, approvers: tuple[str, str],
              verdict_states: set[str]) -> RlhfTour:
    """Run the RLHF step. `policy_version`: the approved release SFT version the policy starts from; `dataset`:
    the demo's chat dataset, whose prompts the policy is sampled on."""
    out = RlhfTour()
    started = time.monotonic()
    data_dir = demo.home / "demo"
    preferences = data_dir / PREFERENCES_FILE
    demo.run("demo-dataset", str(preferences), "--preferences")

    demo.console.print("[bold]the reward model:[/bold] a one-score head trained on the rated pairs")
    submitted = demo.json("submit", str(REWARD_MODEL_JOB_FILE), "--as", requester, "--dataset", str(preferences),
                          "--json")
    rm_job = submitted["job_id"]
    demo.wait_state(rm_job, {"awaiting_approval"}, timeout_s=180)
    demo.run("approve", rm_job, "--as", approvers[0], "--comment", "pairs reviewed: the exact JSON is preferred")
    out.reward_model_job = demo.wait_state(rm_job, verdict_states, timeout_s=900)
    demo.run("eval", "show", rm_job, check=False)
    rm_version = demo.version_of(rm_job)["id"]
    demo.run("models", "approve", rm_version, "--as", approvers[1], "--comment",
             "held-out pairwise accuracy and calibration reviewed")
    out.reward_model_version = demo.json("models", "show", rm_version, "--json")

    demo.console.print(f"[bold]the policy:[/bold] GRPO from {policy_version} against {rm_version} and a JSON-schema "
                       "rule")
    job_file = rlhf_job_file(data_dir / "demo_job_rlhf.yaml", policy_version=policy_version,
                             reward_model_version=rm_version)
    submitted = demo.json("submit", str(job_file), "--as", requester, "--dataset", str(dataset), "--json")
    rlhf_job = submitted["job_id"]
    demo.wait_state(rlhf_job, {"awaiting_approval"}, timeout_s=180)
    demo.run("approve", rlhf_job, "--as", approvers[0], "--comment",
             "why_not_dpo reviewed: the JSON-schema rule scores fresh samples, which fixed pairs cannot; "
             "the rule and the KL bound reviewed")
    out.rlhf_job = demo.wait_state(rlhf_job, verdict_states, timeout_s=900)
    demo.run("eval", "show", rlhf_job, check=False)
    version = demo.version_of(rlhf_job)["id"]
    aibom_file = data_dir / f"{version}.aibom.json"
    demo.run("models", "show", version, "--aibom", "--out", str(aibom_file))
    aibom = json.loads(aibom_file.read_text())
    model_ref = aibom["metadata"]["component"]["bom-ref"]
    out.aibom_dependencies = next(d["dependsOn"] for d in aibom["dependencies"] if d["ref"] == model_ref)
    demo.console.print(f"{version} depends on: {', '.join(out.aibom_dependencies)}", highlight=False)
    out.rlhf_version = demo.json("models", "show", version, "--json")
    out.seconds = time.monotonic() - started
    demo.console.print(f"the RLHF step took {out.seconds:.0f}s")
    return out
