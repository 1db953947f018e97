"""Payloads of the evaluation stream (services/evaluator). Metrics travel as numbers per suite, for the
fine-tuned model and for its base on the same prompts; examples and outputs stay in the report artefact,
whose sha256 the ledger commits to through evaluation.completed."""

from __future__ import annotations

from pydantic import Field

from shared.events.payloads import ArtifactRef, Payload, RiskTier
from shared.ids import JobId

MAX_SUITES = 20
MAX_METRICS_PER_SUITE = 100
SuiteName = str


class EvaluationRequested(Payload):
    """A re-run on demand (`tunegate eval run`), asked of the registry by a principal it authenticated."""

    job_id: JobId
    requested_by: str = Field(min_length=1, max_length=200)
    suites: list[SuiteName] | None = Field(default=None, max_length=MAX_SUITES)
    reason: str = Field(default="", max_length=2000)


class EvaluationStarted(Payload):
    job_id: JobId
    evaluation_id: str = Field(min_length=1, max_length=80)
    artifact_sha256: str
    suites: list[SuiteName] = Field(default_factory=list, max_length=MAX_SUITES)
    worker_id: str = ""


class SuiteSummary(Payload):
    name: SuiteName
    metrics: dict[str, float | None] = Field(default_factory=dict, max_length=MAX_METRICS_PER_SUITE)
    base_metrics: dict[str, float | None] = Field(default_factory=dict, max_length=MAX_METRICS_PER_SUITE)
    seconds: float = Field(default=0.0, ge=0)


def rule_problem(rule: str) -> str | None:
    """The problem a gate failure's rule names (`max_increase:value_nan` -> `value_nan`), None for a plain miss:
    the one reading of GateFailure.rule's `<rule>:<problem>` form."""
    return rule.partition(":")[2] or None


class GateFailure(Payload):
    metric: str = Field(description="suite.metric")
    rule: str = Field(description="max | min | max_increase | max_decrease | required, or <rule>:<problem> when "
                                  "the check could not be made on numbers (value_nan, value_inf, value_-inf, base_nan, "
                                  "base_missing, ...): the value or base is then null")
    value: float | None
    threshold: float
    base: float | None = None


class GateVerdict(Payload):
    policy: str
    risk_tier: RiskTier
    passed: bool
    failures: list[GateFailure] = Field(default_factory=list)
    checked: int = Field(ge=0, description="How many thresholds were checked.")
    complete: bool = Field(
        default=True,
        description="Every configured suite was asked for. A re-run of some suites informs, but cannot set the "
                    "job's standing verdict: re-running only the suites that pass must not clear a failed gate.",
    )


class EvaluationCompleted(Payload):
    job_id: JobId
    evaluation_id: str = Field(min_length=1, max_length=80)
    artifact: ArtifactRef
    base_model: str
    verdict: GateVerdict
    suites: list[SuiteSummary] = Field(default_factory=list, max_length=MAX_SUITES)
    report: ArtifactRef = Field(description="The JSON report (tunegate.evaluation-report/1).")
    report_html: ArtifactRef


class EvaluationFailed(Payload):
    job_id: JobId
    evaluation_id: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=4000)
