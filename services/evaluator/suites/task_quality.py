"""Task quality on the held-out split (records the trainer never saw): how likely each model finds the
reference answers (held-out loss, perplexity), how often its greedy answer is the reference (exact match),
and, when the job declares an output schema, how often its answer is JSON that satisfies it."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Any

from pydantic import Field

from services.evaluator.domain.statistics import perplexity, token_weighted_nll
from services.evaluator.domain.structured_output import OutputSchema
from services.evaluator.domain.text_metrics import exact_match
from services.evaluator.engine.models import ScoringModel
from services.evaluator.engine.records import PromptAnswer, prompts_and_answers
from services.evaluator.suites.base import EvaluationInputs, Suite, SuiteConfig, SuiteOutcome


class TaskQualityConfig(SuiteConfig):
    max_new_tokens: int = Field(default=64, ge=1, le=4096,
                                description="Greedy tokens generated per held-out prompt.")
    max_records: int = Field(default=256, ge=1, le=100_000,
                             description="Held-out records evaluated at most (a seeded sample beyond that).")
    lenient_json: bool = Field(
        default=False,
        description="Accept the first JSON object in an output (after a code fence or lead-in text); strict "
                    "by default, as a program parsing the output would be.",
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class TaskQualitySuite(Suite):
    name = "task_quality"
    Config = TaskQualityConfig
    config: TaskQualityConfig

    def applies_to(self, inputs: EvaluationInputs) -> str | None:
        if not inputs.held_out_records:
            return "no held-out records (the job's holdout_fraction was 0 or the dataset too small)"
        if not prompts_and_answers(inputs.held_out_records[:50], inputs.kind, inputs.models.tuned):
            return f"held-out records of kind {inputs.kind!r} have no reference answer to compare with"
        return None

    def _sample(self, inputs: EvaluationInputs) -> list[PromptAnswer]:
        records = inputs.held_out_records
        if len(records) > self.config.max_records:
            records = random.Random(f"task_quality|{inputs.seed}").sample(records, self.config.max_records)
        return prompts_and_answers(records, inputs.kind, inputs.models.tuned)

    def run(self, inputs: EvaluationInputs) -> SuiteOutcome:
        items = self._sample(inputs)
        schema = (OutputSchema(inputs.options.output_schema, lenient=self.config.lenient_json)
                  if inputs.options.output_schema is not None else None)
        results: dict[str, dict[str, Any]] = {}
        for label, model in inputs.models.both():
            results[label] = self._measure(model, items, schema)
        return SuiteOutcome(
            metrics=results["tuned"]["metrics"],
            base_metrics=results["base"]["metrics"],
            details={
                "records": len(items),
                "reference_tokens": results["tuned"]["tokens"],
                "max_new_tokens": self.config.max_new_tokens,
                "output_schema": schema is not None,
                "tuned": results["tuned"]["details"],
                "base": results["base"]["details"],
            },
            histograms={f"heldout_nll_{label}": results[label]["per_record_nll"] for label in results},
        )

    def _measure(self, model: ScoringModel, items: list[PromptAnswer], schema: OutputSchema | None) -> dict[str, Any]:
        scores = model.score([(item.prompt, item.answer) for item in items])
        outputs = model.generate([item.prompt for item in items], max_new_tokens=self.config.max_new_tokens)
        loss = token_weighted_nll([(s.logprob, s.tokens) for s in scores])
        matches = [exact_match(output, item.answer) for output, item in zip(outputs, items, strict=True)]
        metrics: dict[str, float | None] = {
            "heldout_loss": loss,
            "heldout_perplexity": perplexity(loss) if loss is not None else None,
            "exact_match": sum(matches) / len(matches) if matches else None,
            "schema_valid_rate": None,
        }
        details: dict[str, Any] = {
            "exact_matches": sum(matches),
            # which held-out answers it got wrong, as hashes: the report must not copy the job's data
            "mismatched_references": sorted({_digest(i.answer) for i, ok in zip(items, matches, strict=True)
                                             if not ok})[:20],
        }
        if schema is not None and outputs:
            checks = [schema.check(output) for output in outputs]
            metrics["schema_valid_rate"] = sum(c.valid for c in checks) / len(checks)
            details["json_parse_rate"] = sum(c.parsed for c in checks) / len(checks)
            details["schema_failures"] = dict(Counter(c.reason for c in checks if c.reason is not None))
        return {"metrics": metrics, "details": details, "tokens": sum(s.tokens for s in scores),
                "per_record_nll": [s.mean_nll for s in scores]}
