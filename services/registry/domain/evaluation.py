"""Evaluations of a trained job as the registry records them: every run the evaluator reports (started,
then completed with the release gate's verdict, or failed with an error) and every re-run a principal
asked for.

They are entities of the Job aggregate rather than an aggregate of their own: a verdict moves the job's
state, so recording it and moving the job must be one act, and the job's version column then guards both
(two deliveries of the same result racing each other cannot both record it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.events.evaluation import rule_problem

EvaluationStatus = Literal["running", "passed", "gate_failed", "error"]
FINISHED: tuple[EvaluationStatus, ...] = ("passed", "gate_failed", "error")


@dataclass(frozen=True)
class EvaluationRequest:
    """A re-run asked for through the API; `request_id` is the id of the evaluation.requested it emitted,
    which the evaluator's events name as their cause."""

    request_id: str
    requested_by: str
    suites: list[str] | None
    reason: str
    at: datetime


@dataclass(frozen=True)
class EvaluationResult:
    """What evaluation.completed reported, as plain JSON (the domain holds no wire models)."""

    artifact_sha256: str
    verdict: dict[str, Any]
    suites: list[dict[str, Any]]
    report: dict[str, Any]
    report_html: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.verdict.get("passed"))

    @property
    def failures(self) -> list[dict[str, Any]]:
        return list(self.verdict.get("failures") or [])


@dataclass(kw_only=True)
class Evaluation:
    evaluation_id: str
    status: EvaluationStatus
    started_at: datetime
    """When the registry first heard of this run (its start, or its outcome if that came first)."""
    request_id: str | None = None
    requested_by: str | None = None
    """The principal who asked for it; None for the evaluation that follows training on its own."""
    artifact_sha256: str | None = None
    suites_requested: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    verdict: dict[str, Any] | None = None
    failing_metrics: list[dict[str, Any]] = field(default_factory=list)
    suites: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    report_html: dict[str, Any] | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def has_verdict(self) -> bool:
        return self.status in ("passed", "gate_failed")

    @property
    def stands(self) -> bool:
        """A verdict over every configured suite: only such a verdict sets the job's state. A re-run of some
        suites is recorded and shown, but re-running only the suites that pass cannot clear a failed gate."""
        return self.has_verdict and bool((self.verdict or {}).get("complete", True))

    def complete(self, result: EvaluationResult, now: datetime) -> None:
        self.status = "passed" if result.passed else "gate_failed"
        self.artifact_sha256 = result.artifact_sha256
        self.verdict = dict(result.verdict)
        self.failing_metrics = result.failures
        self.suites = list(result.suites)
        self.report = {"uri": result.report["uri"], "sha256": result.report["sha256"]}
        self.report_html = {"uri": result.report_html["uri"], "sha256": result.report_html["sha256"]}
        self.finished_at = now

    def fail(self, reason: str, now: datetime) -> None:
        self.status = "error"
        self.error = reason
        self.finished_at = now


def suite_problems(wanted: list[str] | None, known: frozenset[str], *, where: str) -> list[str]:
    """Why a list of suite names cannot be run (none when it can); None asks for the configured set."""
    if wanted is None:
        return []
    configured = ", ".join(sorted(known)) or "(none)"
    if not wanted:
        return [f"{where}: an empty list runs no suite; leave it out to run every configured suite ({configured})"]
    unknown = sorted(set(wanted) - known)
    if unknown:
        return [f"{where}: unknown suite(s) {', '.join(unknown)}; the evaluator runs {configured}"]
    return []


def gate_value_word(value: float | None, rule: str) -> str:
    """How a gate failure's value reads: the number, or why there is none. JSON carries a NaN or infinite
    value as null, and the evaluator says which in the rule (`max_increase:value_nan`): that is not "not
    measured"."""
    if value is not None:
        return f"{value:.4g}"
    problem = rule_problem(rule) or ""
    if problem.startswith("value_"):
        return problem.removeprefix("value_").replace("nan", "NaN")
    return "not measured"


def describe_failure(failure: dict[str, Any]) -> str:
    """One failing gate check in words: `suite.metric value 0.31 > max 0.2` (with the base when compared)."""
    value = failure.get("value")
    measured = gate_value_word(value, str(failure.get("rule") or ""))
    base = failure.get("base")
    against = f" (base {base:.4g})" if base is not None else ""
    return f"{failure.get('metric')} {measured}{against} fails {failure.get('rule')} {failure.get('threshold'):.4g}"
