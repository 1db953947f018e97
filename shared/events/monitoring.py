"""Payloads of recurring monitoring (services/evaluator/monitoring.py): the scheduled re-evaluation of a
deployed version (tunegate.evaluation) and what it, or the gateway's own traffic, finds (tunegate.models).
Findings are numbers: the statistic, its threshold and what it was compared with; never text."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.events.payloads import SHA256_PATTERN, Payload
from shared.ids import ModelVersionId

MAX_FINDINGS = 20
MAX_SCHEDULED_SUITES = 20


class EvaluationScheduled(Payload):
    """A recurring re-evaluation of a deployed version, published by the evaluator's scheduler (one leader
    among its replicas) once per interval for every version it knows to be deployed."""

    version_id: ModelVersionId
    artifact_sha256: str = Field(pattern=SHA256_PATTERN)
    suites: list[str] = Field(min_length=1, max_length=MAX_SCHEDULED_SUITES)
    round: str = Field(min_length=1, max_length=40, description="ISO time of the scheduling round.")


class DriftFinding(Payload):
    """One measurement past its threshold, or one that could not be checked against it (`problem`)."""

    metric: str = Field(min_length=1, max_length=120, description="`suite.metric`, or a production signal: "
                        "block_rate, refusal_rate, output_length, dlp_findings.")
    statistic: Literal["psi", "chi_square", "increase", "decrease"]
    value: float | None = Field(description="The statistic: PSI, chi-square, or the change against the baseline; "
                                "null exactly when `problem` says why it cannot be computed.")
    threshold: float
    p_value: float | None = Field(default=None, ge=0, le=1, description="Chi-square only: the test's p-value, "
                                  "which crossed the threshold when below it.")
    baseline: float | None = Field(default=None, description="The baseline's value of the metric (a rate, a "
                                   "metric), where one number describes it.")
    current: float | None = None
    problem: Literal["value_nan", "value_inf", "value_-inf", "value_missing"] | None = Field(
        default=None, description="Set when the re-evaluation gave the metric as no finite number (NaN, "
        "infinite, or null/absent, which is how a non-finite metric travels): a finding, never a skip, named as "
        "the evaluation gate names the same failure (`max_increase:value_nan`).")

    @model_validator(mode="after")
    def _value_or_problem(self) -> DriftFinding:
        if (self.value is None) == (self.problem is None):
            raise ValueError("a drift finding carries either a value or the problem that prevented one, not both")
        return self


class MonitoringWindow(Payload):
    """The production window compared with the baseline window."""

    size: int = Field(ge=1, description="Requests in the current window.")
    baseline_size: int = Field(ge=1)
    baseline_established_at: str = Field(max_length=40)


class ModelDriftDetected(Payload):
    """A deployed version behaves measurably differently from its baseline: in a scheduled re-evaluation
    (source `scheduled_evaluation`, against the evaluation that registered it) or in production traffic
    (source `production`, against its first full window of gateway events)."""

    version_id: ModelVersionId
    source: Literal["scheduled_evaluation", "production"]
    findings: list[DriftFinding] = Field(min_length=1, max_length=MAX_FINDINGS)
    evaluation_id: str | None = Field(default=None, max_length=80, description="The re-evaluation, if any.")
    baseline_evaluation_id: str | None = Field(default=None, max_length=80)
    window: MonitoringWindow | None = None


class ModelMemorisationDetected(Payload):
    """A scheduled re-evaluation found the version reproducing training data (memorisation suite) beyond the
    thresholds against the evaluation that registered it."""

    version_id: ModelVersionId
    evaluation_id: str = Field(min_length=1, max_length=80)
    baseline_evaluation_id: str = Field(min_length=1, max_length=80)
    findings: list[DriftFinding] = Field(min_length=1, max_length=MAX_FINDINGS)
