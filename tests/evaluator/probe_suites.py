"""Suites registered from outside the evaluator package (the YAML names any `module:Class`), for the
service tests: one that measures something real but cheap, one slow enough to kill a worker mid-way."""

from __future__ import annotations

import time

from pydantic import Field

from services.evaluator.engine.records import prompts_and_answers
from services.evaluator.suites.base import EvaluationInputs, Suite, SuiteConfig, SuiteOutcome


class HeldOutNllSuite(Suite):
    """Mean held-out answer NLL for both models: enough to show the base/fine-tuned comparison works."""

    name = "heldout_nll"

    def run(self, inputs: EvaluationInputs) -> SuiteOutcome:
        records = inputs.held_out_records or inputs.training_records
        pairs = [(pa.prompt, pa.answer) for pa in prompts_and_answers(records, inputs.kind, inputs.models.tuned)]
        tuned = inputs.models.tuned.score(pairs)
        base = inputs.models.base.score(pairs)
        return SuiteOutcome(
            metrics={"mean_nll": sum(s.mean_nll for s in tuned) / len(tuned), "records": float(len(pairs))},
            base_metrics={"mean_nll": sum(s.mean_nll for s in base) / len(base), "records": float(len(pairs))},
        )


class SlowConfig(SuiteConfig):
    seconds: float = Field(default=6.0, ge=0, le=600)


class SlowSuite(Suite):
    """Generates in small steps for `seconds`: a window in which a test can SIGKILL the worker."""

    name = "slow"
    Config = SlowConfig

    def run(self, inputs: EvaluationInputs) -> SuiteOutcome:
        assert isinstance(self.config, SlowConfig)
        deadline = time.monotonic() + self.config.seconds
        rounds = 0
        while time.monotonic() < deadline:
            inputs.models.tuned.generate(["Hello"], max_new_tokens=4)
            rounds += 1
        return SuiteOutcome(metrics={"rounds": float(rounds)})
