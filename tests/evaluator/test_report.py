"""The evaluation report from hand-made suite outcomes (no model): the JSON record and its schema fields,
byte-for-byte determinism (charts included), the HTML treating every string from data as hostile, one chart
per suite with metrics plus one per histogram, and failing metrics named with value and threshold."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from services.evaluator.domain.gate import GatePolicy, judge
from services.evaluator.engine.evaluate import EvaluationRun, SuiteRun
from services.evaluator.engine.report import REPORT_SCHEMA, ReportError, ReportMeta, build_report
from services.evaluator.suites.base import SuiteOutcome
from shared.evaluation.options import CanarySpec, EvaluationOptions

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> " onmouseover="steal()'
CANARY = "sk_live_Q7hT2mW9pL4xR8vK1nB6cZ3d"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GATE = GatePolicy.model_validate({
    "name": "test-gate",
    "tiers": {
        "minimal": {"thresholds": {}},
        "limited": {"thresholds": {}},
        "high": {"thresholds": {
            "memorisation.exposure_max": {"max": 10.0},
            "task_quality.exact_match": {"min": 0.5, "max_decrease": 0.1},
            "pii_leakage.leak_rate_EMAIL_ADDRESS": {"max": 0.05},
        }},
    },
})


def outcomes(detail_text: str = "The model said: ok") -> list[SuiteRun]:
    return [
        SuiteRun("task_quality", SuiteOutcome(
            metrics={"exact_match": 0.62, "schema_valid_rate": 0.9, "mean_nll": 1.37},
            base_metrics={"exact_match": 0.11, "schema_valid_rate": 0.25, "mean_nll": 3.05},
            details={"examples": [{"prompt_sha256": "ab12", "output": detail_text, "correct": True},
                                  {"prompt_sha256": "cd34", "output": "{}", "correct": False}],
                     "per_field": {"name": 0.8, "city": 0.7}},
        ), seconds=4.2509),
        SuiteRun("memorisation", SuiteOutcome(
            metrics={"exposure_max": 13.9, "exposure_mean": 7.25, "canaries_extracted": 2.0},
            base_metrics={"exposure_max": 2.1, "exposure_mean": 1.02, "canaries_extracted": 0.0},
            details={"shape": "api_key", "candidates": 5000},
            histograms={"canary_exposure": [13.9, 9.1, 6.0, 4.4, 2.85, 7.25, 8.0, 5.5]},
        ), seconds=11.5),
        SuiteRun("pii_leakage", None, skipped="no detector findings in the training data"),
    ]


def make_run(detail_text: str = "The model said: ok") -> EvaluationRun:
    runs = outcomes(detail_text)
    partial = EvaluationRun(runs, judge(GATE, "high", {}, set()), 0)
    verdict = judge(GATE, "high", partial.measured(), {r.name for r in runs if r.outcome is not None})
    return EvaluationRun(runs, verdict, seconds=15.9)


META = ReportMeta(
    job_id="job_01JDREPORT", evaluation_id="ev_01JDREPORT", artifact_sha256="a" * 64, base_model="tiny",
    base_model_sha256="b" * 64, risk_tier="high", suite_set_version="2026.11-1", gate_policy="test-gate",
    created_at=datetime(2026, 11, 30, 13, 0, 5, tzinfo=timezone(timedelta(hours=1))), worker_id="evaluator-7",
    options=EvaluationOptions(canaries=CanarySpec(count=8, repeats=4, shape="api_key"), holdout_fraction=0.2,
                              output_schema={"type": "object", "required": ["name"]}),
    canary_shape="api_key", canary_count=8, held_out_count=6,
)


def test_the_json_report_holds_every_field_of_the_schema() -> None:
    report = build_report(make_run(), META, must_not_contain=[CANARY])
    doc = json.loads(report.json_bytes)
    assert doc["schema"] == REPORT_SCHEMA
    assert (doc["job_id"], doc["evaluation_id"], doc["worker_id"]) == ("job_01JDREPORT", "ev_01JDREPORT", "evaluator-7")
    assert doc["created_at"] == "2026-11-30T12:00:05+00:00"  # normalised to UTC
    assert doc["artifact"] == {"sha256": "a" * 64}
    assert doc["base_model"] == {"name": "tiny", "sha256": "b" * 64}
    assert (doc["risk_tier"], doc["suite_set_version"]) == ("high", "2026.11-1")
    assert doc["canaries"] == {"shape": "api_key", "count": 8}
    assert doc["held_out_records"] == 6
    assert doc["options"]["canaries"] == {"count": 8, "repeats": 4, "shape": "api_key"}
    assert doc["options"]["holdout_fraction"] == 0.2
    assert re.fullmatch(r"[0-9a-f]{64}", doc["options"]["output_schema_sha256"])
    assert doc["seconds"] == 15.9

    suites = {s["name"]: s for s in doc["suites"]}
    assert [s["name"] for s in doc["suites"]] == ["task_quality", "memorisation", "pii_leakage"]  # run order
    quality = suites["task_quality"]
    assert quality["status"] == "ran" and quality["seconds"] == 4.251
    assert quality["metrics"]["exact_match"] == {"tuned": 0.62, "base": 0.11, "change": pytest.approx(0.51),
                                                 "gate": None}
    assert quality["metrics"]["mean_nll"]["base"] == 3.05
    assert quality["details"]["per_field"] == {"city": 0.7, "name": 0.8}
    assert suites["memorisation"]["histograms"]["canary_exposure"][0] == 13.9
    assert suites["pii_leakage"] == {"name": "pii_leakage", "status": "skipped", "seconds": 0.0,
                                     "skipped_reason": "no detector findings in the training data"}
    assert [c["name"] for c in doc["charts"]] == [
        "01-metrics-task_quality.png", "02-metrics-memorisation.png", "03-histogram-memorisation-canary_exposure.png"]
    assert CANARY not in report.json_bytes.decode() and CANARY not in report.html_bytes.decode()


def test_the_same_run_gives_the_same_bytes() -> None:
    first, second = build_report(make_run(), META), build_report(make_run(), META)
    assert first.json_bytes == second.json_bytes
    assert first.html_bytes == second.html_bytes
    assert first.charts == second.charts
    # Sorted keys throughout, so the bytes do not depend on the order suites filled their dicts in.
    doc = json.loads(first.json_bytes)
    assert first.json_bytes == (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    for png in first.charts.values():
        assert png.startswith(PNG_MAGIC)
        assert b"Software" not in png and b"matplotlib" not in png  # no tool/version metadata to drift
    # A different meta changes the record.
    later = build_report(make_run(), ReportMeta(**{**META.__dict__, "created_at": datetime(2026, 12, 1, tzinfo=UTC)}))
    assert later.json_bytes != first.json_bytes


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def test_strings_from_data_are_escaped_in_the_html() -> None:
    run = make_run(detail_text=HOSTILE)
    run.suites[1].outcome.details[HOSTILE] = [HOSTILE, {"nested": HOSTILE}]  # type: ignore[union-attr]
    run.suites[1].outcome.histograms[HOSTILE] = [1.0, 2.0]  # type: ignore[union-attr]
    run.suites[2].skipped = HOSTILE
    page = build_report(run, META).html_bytes.decode()

    assert "<script" not in page.lower()
    assert html_escaped(HOSTILE) in page
    collector = TagCollector()
    collector.feed(page)
    allowed = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "table", "thead",
               "tbody", "tr", "th", "td", "code", "pre", "ol", "li", "figure", "img", "figcaption"}
    assert {tag for tag, _ in collector.tags} <= allowed
    for tag, attrs in collector.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href"):
                assert value is not None and value.startswith("data:image/png;base64,")
    metas = [dict(attrs) for tag, attrs in collector.tags if tag == "meta"]
    assert any(m.get("http-equiv") == "Content-Security-Policy" and "default-src 'none'" in (m.get("content") or "")
               for m in metas)
    assert "http://" not in page and "https://" not in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_one_chart_per_suite_with_metrics_and_one_per_histogram() -> None:
    report = build_report(make_run(), META)
    assert len(report.charts) == 3  # task_quality, memorisation, canary_exposure; the skipped suite has none
    page = report.html_bytes.decode()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(data) for data in embedded] == list(report.charts.values())
    doc = json.loads(report.json_bytes)
    import hashlib

    assert [c["sha256"] for c in doc["charts"]] == [hashlib.sha256(p).hexdigest() for p in report.charts.values()]

    run = make_run()
    run.suites[1].outcome.histograms["candidate_rank"] = [1, 3, 3, 9]  # type: ignore[union-attr]
    run.suites[1].outcome.histograms["empty"] = []  # type: ignore[union-attr]
    more = build_report(run, META)
    assert len(more.charts) == 4  # one histogram per key with values
    assert "No values for: empty" in more.html_bytes.decode()


def test_failing_metrics_are_shown_with_value_and_threshold() -> None:
    report = build_report(make_run(), META)
    verdict = json.loads(report.json_bytes)["verdict"]
    assert verdict["passed"] is False and verdict["policy"] == "test-gate" and verdict["checked"] == 2
    [failure] = verdict["failures"]  # exposure 13.9 > 10; exact_match 0.62 passes min 0.5 and improves
    assert failure["metric"] == "memorisation.exposure_max"
    assert (failure["rule"], failure["value"], failure["threshold"], failure["base"]) == ("max", 13.9, 10.0, 2.1)
    assert failure["description"] == "memorisation.exposure_max = 13.9; max is 10"
    memorisation = json.loads(report.json_bytes)["suites"][1]
    assert memorisation["metrics"]["exposure_max"]["gate"] == "failed"
    assert memorisation["metrics"]["exposure_mean"]["gate"] is None

    page = report.html_bytes.decode()
    assert "FAILED</span> 1 of 2 checks of tier high failed" in page
    assert ('<tr class="fail"><td>memorisation.exposure_max</td><td>max</td><td class="num">13.9</td>'
            '<td class="num">2.1</td><td class="num">10</td>') in page
    assert '<tr class="fail"><td>exposure_max</td><td class="num">13.9</td>' in page

    passing = make_run()
    passing.suites[1].outcome.metrics["exposure_max"] = 8.0  # type: ignore[union-attr]
    passing = EvaluationRun(passing.suites, judge(GATE, "high", passing.measured(),
                                                  {"task_quality", "memorisation"}), 1.0)
    assert "PASSED</span> all 2 thresholds of tier high held" in build_report(passing, META).html_bytes.decode()


def test_values_json_cannot_hold_or_must_not_show_are_handled() -> None:
    run = make_run()
    run.suites[0].outcome.metrics["mean_nll"] = float("nan")  # type: ignore[union-attr]
    run.suites[0].outcome.base_metrics["mean_nll"] = float("inf")  # type: ignore[union-attr]
    metric = json.loads(build_report(run, META).json_bytes)["suites"][0]["metrics"]["mean_nll"]
    assert (metric["tuned"], metric["base"], metric["change"]) == ("NaN", "Infinity", "NaN")

    leaky = make_run(detail_text=f"the key is {CANARY}")
    with pytest.raises(ReportError, match="canary"):
        build_report(leaky, META, must_not_contain=[CANARY])

    odd = make_run()
    odd.suites[0].outcome.details["when"] = datetime(2026, 1, 1)  # type: ignore[union-attr]
    with pytest.raises(ReportError, match=r"task_quality details\.when: datetime is not JSON-able"):
        build_report(odd, META)
    with pytest.raises(ReportError, match="time zone"):
        build_report(make_run(), ReportMeta(**{**META.__dict__, "created_at": datetime(2026, 1, 1)}))
