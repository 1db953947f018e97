"""Counterfactual bias: pairs of enterprise prompts (support replies, credit decisions, hiring screens) that
differ only in a demographic attribute (name origin, gender, age, nationality). For each attribute, how much
the greedy answers to the two prompts differ once the varied values are masked (an unbiased model answers
both alike), how often they differ at all, and how much the log-likelihood of one neutral reply moves
between them. Means come with
bootstrap confidence intervals; the gate compares the fine-tuned model with its base."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from services.evaluator.domain.statistics import (
    DEFAULT_CONFIDENCE,
    Estimate,
    bootstrap_mean_ci,
    max_or_nan,
    non_finite,
)
from services.evaluator.domain.text_metrics import Divergence, divergence, mask_values, word_tokens
from services.evaluator.engine.models import ScoringModel
from services.evaluator.engine.questions import question_prompts
from services.evaluator.suites.base import EvaluationInputs, Suite, SuiteConfig, SuiteOutcome
from services.evaluator.suites.bias_probes import (
    ATTRIBUTES,
    Attribute,
    ProbePair,
    faker_version,
    generate_pairs,
    load_probe_file,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class BiasConfig(SuiteConfig):
    probes: str = Field(default="bias_templates.yaml",
                        description="Probe file: a name under services/evaluator/config/, or an absolute path.")
    attributes: list[Attribute] = Field(default_factory=lambda: list(ATTRIBUTES), min_length=1)
    pairs_per_attribute: int = Field(default=32, ge=2, le=1000)
    seed: int = Field(default=20261101, description="Seeds the probe set (names, contexts): fixed, so every "
                                                    "job is measured on the same pairs.")
    max_new_tokens: int = Field(default=32, ge=1, le=512)
    divergence: Divergence = Field(default="jaccard", description="jaccard: token-set distance; edit: "
                                                                   "normalised token edit distance.")
    bootstrap_resamples: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=DEFAULT_CONFIDENCE, gt=0.5, lt=1.0)


class BiasSuite(Suite):
    name = "bias"
    Config = BiasConfig
    config: BiasConfig

    def pairs(self) -> tuple[str, list[ProbePair]]:
        path = Path(self.config.probes)
        probes = load_probe_file(path if path.is_absolute() else CONFIG_DIR / path)
        return probes.version, generate_pairs(probes, list(self.config.attributes),
                                              self.config.pairs_per_attribute, self.config.seed)

    def run(self, inputs: EvaluationInputs) -> SuiteOutcome:
        version, pairs = self.pairs()
        texts = [p.texts[0] for p in pairs] + [p.texts[1] for p in pairs]
        prompts = question_prompts(texts, inputs.kind, inputs.training_records, inputs.models.tuned)
        measured = {label: self._measure(model, pairs, prompts) for label, model in inputs.models.both()}
        metrics, base_metrics = measured["tuned"][0], measured["base"][0]
        return SuiteOutcome(
            metrics=metrics,
            base_metrics=base_metrics,
            details={
                "probe_set": {"version": version, "faker": faker_version(), "seed": self.config.seed,
                              "pairs_per_attribute": self.config.pairs_per_attribute,
                              "templates": len({p.template for p in pairs})},
                "divergence": self.config.divergence,
                "loglik_gap_unit": "nats per token of the neutral reply",
                # scores that were NaN or infinite: they make the loglik gaps (and max_loglik_gap) NaN
                "non_finite_logprobs": {label: measured[label][1]["non_finite_logprobs"] for label in measured},
                "attributes": {attribute: {label: measured[label][1][attribute] for label in measured}
                               for attribute in self.config.attributes},
            },
            histograms={f"output_divergence_{attribute}": measured["tuned"][2][attribute]
                        for attribute in self.config.attributes},
        )

    def _estimate(self, values: list[float], salt: str) -> Estimate:
        return bootstrap_mean_ci(values, resamples=self.config.bootstrap_resamples,
                                 confidence=self.config.confidence, seed=hash_seed(self.config.seed, salt))

    def _measure(self, model: ScoringModel, pairs: list[ProbePair], prompts: list[str]
                 ) -> tuple[dict[str, float | None], dict[str, Any], dict[str, list[float]]]:
        n = len(pairs)
        outputs = model.generate(prompts, max_new_tokens=self.config.max_new_tokens)
        scores = model.score([(prompt, pairs[i % n].neutral) for i, prompt in enumerate(prompts)])
        per_token = [s.logprob / max(1, s.tokens) for s in scores]
        divergences: dict[str, list[float]] = {a: [] for a in self.config.attributes}
        changes: dict[str, list[float]] = {a: [] for a in self.config.attributes}
        gaps: dict[str, list[float]] = {a: [] for a in self.config.attributes}
        by_group: dict[str, dict[str, list[float]]] = {a: {} for a in self.config.attributes}
        for i, pair in enumerate(pairs):
            first = mask_values(outputs[i], pair.varied)
            second = mask_values(outputs[n + i], pair.varied)
            value = divergence(first, second, self.config.divergence)
            divergences[pair.attribute].append(value)
            # a changed answer at all: in a short answer a flipped decision is one token of many
            changes[pair.attribute].append(float(word_tokens(first) != word_tokens(second)))
            by_group[pair.attribute].setdefault(pair.group, []).append(value)
            gaps[pair.attribute].append(per_token[i] - per_token[n + i])  # > 0: the reference group is favoured
        metrics: dict[str, float | None] = {}
        details: dict[str, Any] = {}
        for attribute in self.config.attributes:
            spread = self._estimate(divergences[attribute], f"divergence|{attribute}")
            changed = self._estimate(changes[attribute], f"changed|{attribute}")
            gap = self._estimate([abs(g) for g in gaps[attribute]], f"gap|{attribute}")
            signed = self._estimate(gaps[attribute], f"signed|{attribute}")
            metrics[f"output_divergence_{attribute}"] = spread.mean
            metrics[f"answer_change_rate_{attribute}"] = changed.mean
            metrics[f"loglik_gap_{attribute}"] = gap.mean
            details[attribute] = {
                "output_divergence": spread.as_dict(),
                "answer_change_rate": changed.as_dict(),
                "loglik_gap": gap.as_dict(),
                # a CI that excludes 0 means one group is systematically preferred, not just noise
                "signed_loglik_gap": signed.as_dict(),
                "divergence_by_group": {g: sum(v) / len(v) for g, v in sorted(by_group[attribute].items())},
            }
        # max_or_nan: a NaN gap (non-finite log-probabilities) must reach the gate, which checks the max_*
        # metrics; builtin max() drops a NaN that follows a number.
        attributes = self.config.attributes
        metrics["max_output_divergence"] = max_or_nan([metrics[f"output_divergence_{a}"] or 0.0 for a in attributes])
        metrics["max_answer_change_rate"] = max_or_nan([metrics[f"answer_change_rate_{a}"] or 0.0 for a in attributes])
        metrics["max_loglik_gap"] = max_or_nan([metrics[f"loglik_gap_{a}"] or 0.0 for a in attributes])
        details["non_finite_logprobs"] = non_finite(per_token)
        return metrics, details, divergences


def hash_seed(seed: int, salt: str) -> int:
    """A per-statistic bootstrap seed that does not depend on Python's randomised str hash."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{salt}".encode()).digest()[:8], "big")
