"""Run the selected suites over one job's inputs and judge the results against the gate, timing each suite.
A suite that cannot apply to the job (no canaries planted, no preference data) says why and is skipped;
a suite that raises fails the whole evaluation (evaluation.failed), never a silent pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.evaluator.domain.gate import GatePolicy, Verdict, judge
from services.evaluator.suites.base import EvaluationInputs, Suite, SuiteOutcome


class SuiteError(RuntimeError):
    """A suite crashed; the message names the suite."""


@dataclass
class SuiteRun:
    name: str
    outcome: SuiteOutcome | None
    skipped: str | None = None
    seconds: float = 0.0


@dataclass
class EvaluationRun:
    suites: list[SuiteRun]
    verdict: Verdict
    seconds: float
    extra: dict[str, object] = field(default_factory=dict)

    def measured(self) -> dict[str, tuple[float | None, float | None]]:
        return {
            f"{run.name}.{metric}": (value, run.outcome.base_metrics.get(metric))
            for run in self.suites if run.outcome is not None
            for metric, value in run.outcome.metrics.items()
        }


def run_suites(inputs: EvaluationInputs, suites: dict[str, Suite], gate: GatePolicy,
               on_suite: Callable[[str], None] | None = None) -> EvaluationRun:
    began = time.perf_counter()
    runs: list[SuiteRun] = []
    for name, suite in suites.items():
        if on_suite is not None:
            on_suite(name)  # lets the caller renew its lease / check for cancellation between suites
        reason = (f"measures {', '.join(sorted(suite.methods))} artefacts; this job's method is {inputs.method_kind}"
                  if inputs.method_kind not in suite.methods else suite.applies_to(inputs))
        if reason is not None:
            runs.append(SuiteRun(name, None, skipped=reason))
            continue
        started = time.perf_counter()
        try:
            outcome = suite.run(inputs)
        except Exception as exc:  # a suite is plug-in code: name it in the failure
            raise SuiteError(f"suite {name!r} failed: {type(exc).__name__}: {exc}") from exc
        runs.append(SuiteRun(name, outcome, seconds=time.perf_counter() - started))
    ran = {run.name for run in runs if run.outcome is not None}
    tier = inputs.risk_tier if inputs.risk_tier in ("minimal", "limited", "high") else "high"
    partial = EvaluationRun(runs, Verdict(policy=gate.name, risk_tier=tier, passed=True, failures=[], checked=0), 0)
    verdict = judge(gate, tier, partial.measured(), ran)  # type: ignore[arg-type]
    return EvaluationRun(runs, verdict, time.perf_counter() - began)
