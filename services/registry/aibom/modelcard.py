"""The CycloneDX `modelCard` of a fine-tuned version: how it was trained, what the evaluator measured, and
what a deployer must consider (the use case, the gate's findings, personal data, bias). Every sentence is
assembled from the facts; nothing here is a figure of its own."""

from __future__ import annotations

from typing import Any

from services.registry.aibom.facts import AIBOMFacts, DatasetFacts, EvaluationFacts, SuiteFacts
from services.registry.domain.evaluation import gate_value_word

# CycloneDX 1.6 `modelParameters.approach.type` is one of supervised, unsupervised, reinforcement-learning,
# semi-supervised, self-supervised. The schema defines reinforcement learning as an agent learning from an
# environment's rewards by trial and error; DPO (Rafailov et al., 2023) has no environment, rollouts or
# reward model: it minimises a classification loss on fixed, human-labelled (chosen, rejected) pairs, so it
# is supervised learning on preference labels (the `tunegate:method.kind` property still says "dpo").
# Continued pretraining predicts the next token of unlabelled text: self-supervised. A reward model is a
# regression head fitted to the same pairs (supervised); RLHF samples from the policy and is updated from the
# rewards of its own samples: reinforcement learning.
APPROACH = {"sft": "supervised", "dpo": "supervised", "cpt": "self-supervised", "reward_model": "supervised",
            "rlhf": "reinforcement-learning"}
TASK = "text-generation"
TASKS = {"reward_model": "text-classification"}  # a reward model scores text, it generates none
BIAS_SUITE = "bias"
# The bias suite's per-attribute metrics are named <measure>_<attribute> (services/evaluator/suites/bias.py).
BIAS_MEASURES = ("output_divergence", "answer_change_rate", "loglik_gap")


def number(value: float | None) -> str:
    """A metric as CycloneDX wants it (a string): Python's shortest round-trip repr, stable across runs."""
    return "not measured" if value is None else repr(float(value))


def _architecture(facts: AIBOMFacts) -> dict[str, str]:
    config = facts.base_architecture
    architectures = [str(name) for name in config.get("architectures") or [] if str(name)]
    model_type = str(config.get("model_type") or "")
    out: dict[str, str] = {}
    # A *ForCausalLM class is a decoder-only transformer in Hugging Face's naming; say no more than we know.
    if architectures and all(name.endswith("ForCausalLM") for name in architectures):
        out["architectureFamily"] = "transformer (decoder-only)"
    elif model_type:
        out["architectureFamily"] = model_type
    if architectures:
        out["modelArchitecture"] = ", ".join(architectures)
    elif model_type:
        out["modelArchitecture"] = model_type
    return out


def model_parameters(facts: AIBOMFacts, dataset_refs: list[str]) -> dict[str, Any]:
    return {
        "approach": {"type": APPROACH[facts.method_kind]},
        "task": TASKS.get(facts.method_kind, TASK),
        **_architecture(facts),
        "datasets": [{"ref": ref} for ref in dataset_refs],
        "inputs": [{"format": "text"}],
        "outputs": [{"format": "text"}],
    }


def base_model_card(facts: AIBOMFacts) -> dict[str, Any] | None:
    architecture = _architecture(facts)
    return {"modelParameters": {"task": TASK, **architecture}} if architecture else None


def performance_metrics(evaluation: EvaluationFacts) -> list[dict[str, str]]:
    """Every suite metric of the fine-tuned model and of its base on the same prompts, in suite order."""
    metrics: list[dict[str, str]] = []
    for suite in evaluation.suites:
        for slice_name, values in (("fine-tuned", suite.metrics), ("base", suite.base_metrics)):
            for name in sorted(values):
                metrics.append({"type": f"{suite.name}.{name}", "value": number(values[name]), "slice": slice_name})
    return metrics


def _text(use_case: dict[str, Any], key: str) -> str:
    value = use_case.get(key)
    return value.strip() if isinstance(value, str) else ""


def _failure_line(evaluation: EvaluationFacts, index: int) -> str:
    failure = evaluation.failures[index]
    base = f", base {number(failure.base)}" if failure.base is not None else ""
    return (
        f"release gate {evaluation.policy} (risk tier {evaluation.risk_tier}): {failure.metric} = "
        f"{number(failure.value) if failure.value is not None else gate_value_word(None, failure.rule)} fails "
        f"{failure.rule} {number(failure.threshold)}{base}"
    )


def technical_limitations(facts: AIBOMFacts) -> list[str]:
    evaluation = facts.evaluation
    lines = [_failure_line(evaluation, index) for index in range(len(evaluation.failures))]
    if not evaluation.complete:
        lines.append(
            f"evaluation {evaluation.evaluation_id} ran only some of the configured suites: its verdict is"
            " informative, not the standing verdict of the gate"
        )
    if facts.adapter == "lora":
        base_hash = f" (sha256 {facts.base_model_sha256})" if facts.base_model_sha256 else ""
        lines.append(f"a LoRA adapter: it runs only on top of the base model {facts.base_model}{base_hash}")
    changes = _text(facts.use_case, "knowledge_changes")
    if changes and changes != "never":
        lines.append(
            f"knowledge is frozen at training time while the use case says it changes {changes}: retrain or"
            " retrieve to stay current"
        )
    if facts.use_case.get("proof_of_concept") is True:
        lines.append("registered from a proof-of-concept use case")
    return lines


def _entities(dataset: DatasetFacts) -> str:
    parts = []
    for entity in sorted(dataset.entity_totals):
        actions = dataset.entity_totals[entity]
        parts.append(f"{entity} ({', '.join(f'{a} {actions[a]}' for a in sorted(actions))})")
    return "; ".join(parts)


def ethical_considerations(facts: AIBOMFacts) -> list[dict[str, str]]:
    evaluation = facts.evaluation
    verdict = "passed" if evaluation.passed else "failed"
    approvers = ", ".join(facts.job_approvers) or "no approver"
    governance = (
        f"risk tier {facts.risk_tier}; approved by {approvers}; release gate {evaluation.policy} {verdict}"
        f" (evaluation {evaluation.evaluation_id})"
    )
    risks: list[dict[str, str]] = []
    declared = _text(facts.use_case, "risks")
    if declared:
        risks.append({"name": declared, "mitigationStrategy": governance})
    for dataset in facts.datasets:
        found = _entities(dataset)
        if not found:
            continue
        ner = {True: "with NER", False: "without NER", None: "NER use not recorded"}[dataset.ner]
        risks.append(
            {
                "name": f"personal data or secrets found in the {dataset.role} dataset: {found}",
                "mitigationStrategy": f"scanner verdict {dataset.scan_verdict or 'not recorded'} ({ner});"
                f" classification {dataset.classification}",
            }
        )
    if facts.differential_privacy:
        bound = f"epsilon {number(facts.epsilon)}, delta {number(facts.delta)}"
        risks.append(
            {
                "name": "memorisation of individual training records",
                "mitigationStrategy": f"trained with differential privacy (DP-SGD), {bound}",
            }
        )
    return risks


def _bias_attributes(suite: SuiteFacts) -> list[str]:
    prefix = f"{BIAS_MEASURES[0]}_"
    return sorted(name.removeprefix(prefix) for name in suite.metrics if name.startswith(prefix))


def fairness_assessments(evaluation: EvaluationFacts) -> list[dict[str, str]]:
    """One assessment per attribute the bias suite probed (counterfactual pairs differing only in it)."""
    suite = next((s for s in evaluation.suites if s.name == BIAS_SUITE), None)
    if suite is None:
        return []
    flagged = {f.metric for f in evaluation.failures if f.metric.startswith(f"{BIAS_SUITE}.")}
    attributes = _bias_attributes(suite)
    # Failures of metrics that belong to no single attribute (max_output_divergence...) concern them all.
    aggregate = sorted(m for m in flagged if not any(m.endswith(f"_{attribute}") for attribute in attributes))
    out = []
    for attribute in attributes:
        names = [f"{measure}_{attribute}" for measure in BIAS_MEASURES]
        harms = "; ".join(
            f"{name.removesuffix('_' + attribute).replace('_', ' ')} {number(suite.metrics.get(name))}"
            f" (base {number(suite.base_metrics.get(name))})"
            for name in names
            if name in suite.metrics
        )
        failing = sorted(flagged & {f"{BIAS_SUITE}.{name}" for name in names})
        failing += [f"{metric} (over every attribute)" for metric in aggregate]
        outcome = (
            f"release gate {evaluation.policy} flagged {', '.join(failing)}"
            if failing
            else f"within the release gate {evaluation.policy} for risk tier {evaluation.risk_tier}"
        )
        out.append(
            {
                "groupAtRisk": f"people distinguished by {attribute}",
                "harms": f"counterfactual prompts differing only in {attribute}: {harms}",
                "mitigationStrategy": outcome,
            }
        )
    return out


def considerations(facts: AIBOMFacts) -> dict[str, Any]:
    use_case = facts.use_case
    out: dict[str, Any] = {}
    users = use_case.get("users")
    if isinstance(users, list) and users:
        out["users"] = [str(user) for user in users]
    elif isinstance(users, str) and users.strip():
        out["users"] = [users.strip()]
    name = _text(use_case, "name") or facts.model_name
    uses = [f"{name}: {_text(use_case, 'description')}".rstrip(": ")]
    for key, label in (("problem", "problem"), ("domain", "domain"), ("data_description", "data")):
        if _text(use_case, key):
            uses.append(f"{label}: {_text(use_case, key)}")
    out["useCases"] = uses
    for key, values in (
        ("technicalLimitations", technical_limitations(facts)),
        ("ethicalConsiderations", ethical_considerations(facts)),
        ("fairnessAssessments", fairness_assessments(facts.evaluation)),
    ):
        if values:
            out[key] = values
    if facts.environment:
        out["environmentalConsiderations"] = {
            "properties": [
                {"name": f"tunegate:environment.{key}", "value": facts.environment[key]}
                for key in sorted(facts.environment)
            ]
        }
    return out


def model_card(facts: AIBOMFacts, dataset_refs: list[str]) -> dict[str, Any]:
    return {
        "modelParameters": model_parameters(facts, dataset_refs),
        "quantitativeAnalysis": {"performanceMetrics": performance_metrics(facts.evaluation)},
        "considerations": considerations(facts),
    }
