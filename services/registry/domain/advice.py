"""Fine-tune-or-RAG advice: the decision matrix of the product brief, answered by fields of the use case.

The advice never blocks a job by itself; it is stored, shown to approvers, and approving against a
"prefer RAG" verdict needs an override comment."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.payloads import UseCase

Verdict = Literal["prefer_rag", "fine_tuning_fits", "both_with_provider_obligations", "no_clear_signal"]

SUMMARIES: dict[str, str] = {
    "prefer_rag": "Prefer RAG: retrieval answers this better than fine-tuning.",
    "fine_tuning_fits": "Fine-tuning fits this use case.",
    "both_with_provider_obligations": (
        "Both: combine fine-tuning with retrieval, and meet EU AI Act provider obligations (high-risk)."
    ),
    "no_clear_signal": (
        "No matrix factor favours fine-tuning or RAG; the written justification has to carry the decision."
    ),
}


# The seed's advice on preference learning is DPO first; these are the costs and the cases that justify more.
METHOD_ADVICE: dict[str, list[str]] = {
    "rlhf": [
        "RLHF costs more than DPO: DPO learns from the preference pairs in one supervised pass; RLHF first trains "
        "a reward model on them, then samples num_generations answers per prompt at every step and scores each "
        "one (several times the compute), and a policy can learn to please the reward rather than do the task "
        "(the reward_hacking suite checks for it). Try DPO first.",
        "RLHF is worth its cost when the reward must generalise beyond the pairs you have (new prompts, scored "
        "online), when part of the reward is a rule a program can check (a JSON schema, a length, required "
        "terms), or when DPO has plateaued on your pairs; state which in use_case.why_not_dpo.",
    ],
    "reward_model": [
        "A reward model is step one of RLHF: it is evaluated (held-out pairwise accuracy, calibration, length "
        "bias) and approved like any version, but never deployed; if DPO on the same pairs is enough, you need "
        "no reward model.",
    ],
}


def method_advice(method_kind: str) -> list[str]:
    return list(METHOD_ADVICE.get(method_kind, []))


class Advice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    summary: str
    reasons: list[str] = Field(default_factory=list, description="Matrix factors that decided the verdict.")
    supporting: list[str] = Field(default_factory=list, description="Factors pointing the other way.")
    warnings: list[str] = Field(default_factory=list)
    requires_override: bool = Field(description="Approving needs an override comment.")

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def rag_factors(use_case: UseCase) -> list[str]:
    factors = []
    if use_case.knowledge_changes in ("weekly", "daily"):
        factors.append(
            f"knowledge changes {use_case.knowledge_changes}: a fine-tuned model is stale between "
            "retrains, a retrieval index is updated in place"
        )
    if use_case.needs_citations:
        factors.append("answers must cite sources: retrieval returns the passages, weights cannot")
    if use_case.erasure_obligation:
        factors.append(
            "GDPR erasure obligation: deleting a document from an index is immediate, removing it from "
            "weights means retraining"
        )
    if use_case.proof_of_concept:
        factors.append("still a proof of concept: RAG is cheaper to build and to throw away")
    return factors


def fine_tuning_factors(use_case: UseCase) -> list[str]:
    factors = []
    if use_case.needs_consistent_format:
        factors.append("needs a consistent voice or output format that prompts cannot enforce")
    if use_case.wants_smaller_model:
        factors.append("a smaller, cheaper model on a narrow task: fine-tuning moves the skill into the weights")
    return factors


def advise(use_case: UseCase, *, risk_tier: str, min_examples: int, method_kind: str = "sft") -> Advice:
    rag = rag_factors(use_case)
    tuning = fine_tuning_factors(use_case)
    warnings: list[str] = method_advice(method_kind)
    if use_case.example_count is None:
        warnings.append(
            f"example count not declared: fine-tuning needs at least a few thousand high-quality "
            f"examples (policy minimum {min_examples})"
        )
    elif use_case.example_count < min_examples:
        warnings.append(
            f"only {use_case.example_count} examples declared: fewer than a few thousand high-quality "
            f"examples (policy minimum {min_examples}) rarely fine-tune well"
        )

    verdict: Verdict
    if risk_tier == "high":
        # High-risk use cases carry provider duties (Art. 16 ff.) whatever the technique: say so first.
        verdict = "both_with_provider_obligations"
        reasons = [
            "high-risk use case (EU AI Act Annex III): provider obligations apply (risk management, data "
            "governance, logging, human oversight, conformity assessment)",
            *rag,
            *tuning,
        ]
        supporting: list[str] = []
    elif rag:
        verdict, reasons, supporting = "prefer_rag", rag, tuning
    elif tuning:
        verdict, reasons, supporting = "fine_tuning_fits", tuning, []
    else:
        verdict, reasons, supporting = "no_clear_signal", [], []
    return Advice(
        verdict=verdict,
        summary=SUMMARIES[verdict],
        reasons=reasons,
        supporting=supporting,
        warnings=warnings,
        requires_override=verdict == "prefer_rag",
    )
