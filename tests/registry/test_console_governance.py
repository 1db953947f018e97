"""The console's later pages over HTTP: alias rollback from a version's page, live training progress (loss
chart, ETA from the step rate, the JSON the page polls), incidents (open, update, close), erasure requests and
their certificates, a version's evidence pack, and the consistency proof between two signed tree heads; each
with the API's roles and a CSRF token on every form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.audit.adapters.keys import local_public_key_path
from services.registry.adapters import training_progress
from services.registry.console import audit_pages
from services.registry.domain.training_progress import ProgressPoint, chart, current_run, duration, summarise
from services.registry.erasure import certificate
from services.registry.erasure.service import SIGNER
from shared.events.envelope import Envelope
from shared.events.payloads import TrainingCompleted, TrainingProgress
from shared.security.keys import load_public_key
from shared.security.signing import KeyDirectory
from tests.registry.console_support import fill_ledger, hidden, login
from tests.registry.registry_support import World, bearer, make_spec, sha
from tests.registry.test_model_versions import VERSION, registered
from tests.registry.test_registry_evaluation import ADAPTER

pytestmark = pytest.mark.anyio
V2 = "ticket-triage.v2"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def api(world: World, path: str, token: str, **body: Any) -> Any:
    return world.client.post(path, json=body, headers=bearer(token))


async def training(world: World) -> str:
    """job_1 approved and training; returns the approver's token."""
    bob = world.principal("bob", "approver")
    await world.submit(make_spec())
    await world.scanned()
    assert world.decide("job_1", bob, decision="approve").status_code == 200
    assert world.state() == "training"
    return bob


def progress_event(step: int, loss: float, at: datetime, total: int = 100) -> Envelope:
    payload = TrainingProgress(job_id="job_1", step=step, total_steps=total, loss=loss, eta_s=999.0)
    return Envelope(
        type="training.progress", producer="trainer", actor="system:trainer", subject="job_1", occurred_at=at,
        payload=payload.model_dump(mode="json"),
    )


async def report(world: World, *points: tuple[int, float, int]) -> list[Envelope]:
    """Deliver training.progress events: (step, loss, seconds after T0)."""
    sent = [progress_event(step, loss, T0 + timedelta(seconds=s)) for step, loss, s in points]
    for envelope in sent:
        await world.runtime.deliver(world.handlers, envelope)
    return sent


# ---------------------------------------------------------------- rollback


async def test_a_deployer_rolls_an_alias_back_from_the_version_page(world: World) -> None:
    bob = await registered(world, "ev-1", "ev-2")
    dora = world.principal("dora", "deployer")
    for version in (VERSION, V2):
        assert api(world, f"/models/{version}/approvals", bob).status_code == 200
        deployed = api(world, f"/models/{version}/deployments", dora, alias="support-triage", tenants=["acme"])
        assert deployed.status_code == 200
    client = world.client
    login(client, bob)
    page = client.get(f"/console/models/{V2}")
    assert "Roll back alias" not in page.text
    refused = client.post("/console/aliases/support-triage/rollback", data={"csrf": hidden(page.text, "csrf")})
    assert refused.status_code == 403 and "needs the &#39;deployer&#39; role" in refused.text

    login(client, dora)
    page = client.get(f"/console/models/{V2}")
    assert "Roll back alias</button>" in page.text and f'href="/console/models/{VERSION}">{VERSION}</a>' in page.text
    assert "Roll back alias" not in client.get(f"/console/models/{VERSION}").text  # not what the alias serves
    no_csrf = client.post("/console/aliases/support-triage/rollback", data={"reason": "x"})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    assert world.get(f"/models/{V2}").json()["state"] == "deployed"
    back = client.post(
        "/console/aliases/support-triage/rollback",
        data={"reason": "v2 answers in prose", "csrf": hidden(page.text, "csrf")},
        follow_redirects=False,
    )
    assert back.status_code == 303 and back.headers["location"] == f"/console/models/{VERSION}"
    assert (world.get(f"/models/{VERSION}").json()["state"], world.get(f"/models/{V2}").json()["state"]) == (
        "deployed", "deprecated"
    )
    event = world.runtime.of_type("model.deployed")[-1]
    assert event.actor == "dora" and event.payload["rollback"] is True
    after = client.get(f"/console/models/{VERSION}").text  # v2 was rolled back from: nothing further back
    assert "Roll back alias</button>" not in after and "served no earlier version that is still servable" in after
    again = client.post("/console/aliases/support-triage/rollback", data={"csrf": hidden(page.text, "csrf")})
    assert again.status_code == 409 and "no earlier version to roll back to" in again.text
    bad_alias = client.post("/console/aliases/Bad%20Alias/rollback", data={"csrf": hidden(page.text, "csrf")})
    assert bad_alias.status_code == 404


# ---------------------------------------------------------------- training progress


def test_eta_comes_from_the_step_rate_of_the_current_run() -> None:
    def at(seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    points = [ProgressPoint(step, 100, 2.0 - step / 100, at(s)) for step, s in ((10, 0), (20, 20), (30, 40))]
    summary = summarise(points)
    assert (summary.step, summary.percent, summary.steps_per_s, summary.eta_s) == (30, 30, 0.5, 140.0)
    # Resumed from a checkpoint at step 20 after an hour's outage: only the steps since count.
    resumed = [*points, ProgressPoint(20, 100, 1.8, at(3640)), ProgressPoint(40, 100, 1.6, at(3650))]
    assert current_run(resumed) == resumed[3:]
    assert summarise(resumed).eta_s == 30.0  # 60 steps left at 2 steps/s
    assert summarise(points[:1]).eta_s == points[0].eta_s  # one point: the trainer's own estimate
    assert summarise([]).percent == 0 and duration(None) == "unknown"
    assert (duration(70), duration(3900), duration(5)) == ("1 min 10 s", "1 h 05 min", "5 s")
    drawn = chart(points, width=100, height=50, pad=0)
    assert drawn.polyline == "10.0,0.0 20.0,25.0 30.0,50.0"  # the falling loss: top (y 0) to bottom, x by step/100
    assert (drawn.loss_min, drawn.loss_max, drawn.step_max) == (1.7, 1.9, 100)
    diverged = [*points, ProgressPoint(40, 100, float("inf"), at(60))]
    assert chart(diverged, width=100, height=50, pad=0).polyline == drawn.polyline  # nothing drawn off the chart


async def test_progress_is_kept_bounded_and_redelivery_is_idempotent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await training(world)
    sent = await report(world, (10, 2.0, 0), (20, 1.9, 10))
    await world.runtime.deliver(world.handlers, sent[0])  # redelivered
    with world.runtime.db.transaction() as db:
        assert [p.step for p in training_progress.points_of(db, "job_1")] == [10, 20]
    monkeypatch.setattr(training_progress, "MAX_POINTS", 4)
    await report(world, *((step, 1.0, step) for step in range(30, 80, 10)))
    with world.runtime.db.transaction() as db:
        steps = [p.step for p in training_progress.points_of(db, "job_1")]
    assert len(steps) <= 4 and steps[0] == 10 and steps[-1] == 70  # thinned, the run's ends kept
    assert world.runtime.of_type("training.progress") == []  # telemetry: the registry re-emits nothing


async def test_job_page_shows_live_progress_then_the_final_curve(world: World) -> None:
    bob = await training(world)
    client = world.client
    login(client, bob)
    waiting = client.get("/console/jobs/job_1").text
    assert 'data-training="yes"' in waiting and "Waiting for the first progress report" in waiting
    assert '<script src="/console/static/progress.js">' in waiting
    await report(world, (10, 2.0, 0), (20, 1.5, 10), (30, 1.25, 20))
    data = client.get("/console/jobs/job_1/progress.json").json()
    assert (data["step"], data["total_steps"], data["percent"], data["training"]) == (30, 100, 30, True)
    assert data["eta_s"] == 70.0 and data["eta"] == "1 min 10 s"  # 70 steps left at 1 step/s
    assert data["polyline"].count(",") == 3 and (data["loss_min"], data["loss_max"]) == (1.25, 2.0)
    page = client.get("/console/jobs/job_1").text
    assert "Step 30 of 100 (30%)" in page and "ETA 1 min 10 s" in page and data["polyline"] in page
    assert client.get("/console/static/progress.js").status_code == 200

    done = TrainingCompleted(job_id="job_1", artifact=ADAPTER, base_model="tiny", method=make_spec().method,
                             data_fingerprint=sha("fingerprint"))
    await world.runtime.deliver(world.handlers, Envelope(
        type="training.completed", producer="trainer", actor="system:trainer", subject="job_1",
        payload=done.model_dump(mode="json"),
    ))
    final = client.get("/console/jobs/job_1/progress.json").json()
    assert (final["training"], final["state"], final["step"]) == (False, "trained", 30)
    page = client.get("/console/jobs/job_1").text
    assert 'data-training="no"' in page and "finished (trained)" in page and final["polyline"] in page

    await report(world, (40, float("nan"), 30))  # a diverged step: shown as '-', left out of the line
    diverged = client.get("/console/jobs/job_1/progress.json").json()
    assert (diverged["step"], diverged["loss"], diverged["polyline"]) == (40, None, final["polyline"])
    assert "loss -, finished (trained)" in client.get("/console/jobs/job_1").text

    login(client, world.principal("erin", "requester"))  # another requester's job
    assert client.get("/console/jobs/job_1/progress.json").status_code == 403
    client.cookies.clear()
    assert client.get("/console/jobs/job_1/progress.json", follow_redirects=False).status_code == 303


# ---------------------------------------------------------------- incidents


async def test_incidents_open_update_close_for_the_roles_that_may(world: World) -> None:
    bob = await registered(world, "ev-1")
    client = world.client
    login(client, world.principal("erin", "requester"))
    assert client.get("/console/incidents").status_code == 403

    login(client, world.principal("dora", "deployer"))  # reads incidents, manages none
    listing = client.get("/console/incidents")
    assert listing.status_code == 200 and "Open an incident" not in listing.text
    refused = client.post("/console/incidents", data={
        "title": "x", "severity": "serious", "affected_versions": VERSION, "csrf": hidden(listing.text, "csrf"),
    })
    assert refused.status_code == 403 and world.get("/incidents").json() == []

    login(client, bob)
    listing = client.get("/console/incidents")
    assert "Open an incident" in listing.text and "report within 15 days" in listing.text
    csrf = hidden(listing.text, "csrf")
    form = {"title": "Leaked a ticket's e-mail", "severity": "serious", "affected_versions": VERSION,
            "description": "reported by a customer"}
    assert client.post("/console/incidents", data=form).status_code == 403  # no CSRF token
    unknown = client.post("/console/incidents", data={**form, "affected_versions": "ghost.v9", "csrf": csrf})
    assert unknown.status_code in (404, 422) and "ghost.v9" in unknown.text
    bad = client.post("/console/incidents", data={**form, "severity": "catastrophic", "csrf": csrf})
    assert bad.status_code == 422 and "severity" in bad.text
    opened = client.post("/console/incidents", data={**form, "csrf": csrf}, follow_redirects=False)
    assert opened.status_code == 303
    page_path = opened.headers["location"]
    [incident] = world.get("/incidents").json()
    assert page_path == f"/console/incidents/{incident['id']}" and incident["opened_by"] == "bob"
    page = client.get(page_path).text
    assert "EU AI Act Art. 73(2)" in page and "Record update" in page and "Close incident" in page

    updated = client.post(f"{page_path}/updates", data={
        "note": "reported to the authority", "reported_reference": "MSA-2026-17", "severity": "", "csrf": csrf,
    }, follow_redirects=False)
    assert updated.status_code == 303
    assert world.get(f"/incidents/{incident['id']}").json()["report_reference"] == "MSA-2026-17"
    assert client.post(f"{page_path}/close", data={"resolution": "", "csrf": csrf}).status_code == 422
    closed = client.post(f"{page_path}/close", data={"resolution": "filter fixed", "csrf": csrf},
                         follow_redirects=False)
    assert closed.status_code == 303 and world.get(f"/incidents/{incident['id']}").json()["status"] == "closed"
    assert [e.type for e in world.runtime.published if e.type.startswith("incident.")] == [
        "incident.opened", "incident.updated", "incident.closed"
    ]
    assert client.post(f"{page_path}/close", data={"resolution": "twice", "csrf": csrf}).status_code == 409
    assert "Close incident" not in client.get(page_path).text
    assert client.get("/console/incidents?status=closed").text.count(incident["id"]) >= 1
    assert client.get("/console/incidents?status=nonsense").status_code == 422
    assert client.get("/console/incidents/..%2Fetc").status_code in (404, 422)


# ---------------------------------------------------------------- erasures


async def test_erasure_pages_and_certificate_for_readers_only(world: World) -> None:
    root = world.admin()
    made = api(world, "/erasures", root, subject="customer-4711", reason="Art. 17 request by e-mail")
    assert made.status_code == 201
    erasure = made.json()
    client = world.client
    login(client, world.principal("bob", "approver"))
    assert client.get("/console/erasures").status_code == 403
    assert client.get(f"/console/erasures/{erasure['id']}/certificate.json").status_code == 403

    login(client, world.reader())
    listing = client.get("/console/erasures")
    assert listing.status_code == 200 and erasure["id"] in listing.text and erasure["subject_key"][:16] in listing.text
    page = client.get(f"/console/erasures/{erasure['id']}")
    assert page.status_code == 200 and "customer-4711" not in listing.text + page.text  # only its keyed hash
    assert erasure["state"] in page.text
    # Nothing of the subject was found anywhere, so every step is done at once and the certificate says so.
    assert (erasure["state"], erasure["certificate_issued"]) == ("completed", True)
    assert "Download the certificate" in page.text and "tunegate.erasure-certificate/1" in page.text
    download = client.get(f"/console/erasures/{erasure['id']}/certificate.json")
    assert download.headers["content-disposition"] == f'attachment; filename="{erasure["id"]}.certificate.json"'
    signed = world.get(f"/erasures/{erasure['id']}/certificate").json()
    assert download.json() == signed  # no audit ledger on this host yet: the signed certificate alone
    fill_ledger(world.settings, world.runtime.published)
    with_proofs = client.get(f"/console/erasures/{erasure['id']}/certificate.json").json()
    # Every step's event, and the completion event that names the certificate's digest (its anchor in the ledger).
    proven = {step["event_id"] for step in signed["steps"]} | {signed["completion"]["event_id"]}
    assert set(with_proofs["audit_proofs"]) == proven
    registry_key = KeyDirectory(world.settings.keys_dir).signer(SIGNER).private_key.public_key()
    log_key = load_public_key(local_public_key_path(world.settings).read_bytes())
    assert certificate.verify(with_proofs, registry_key, log_key) == []  # as `tunegate erasure verify` checks it
    assert client.get("/console/erasures/er-nope").status_code == 404


# ---------------------------------------------------------------- evidence pack


async def test_evidence_pack_viewed_and_downloaded_from_the_version_page(world: World) -> None:
    await registered(world, "ev-1")
    fill_ledger(world.settings, world.runtime.published)
    client = world.client
    login(client, world.principal("erin", "requester"))  # requesters read their versions, never evidence packs
    refused = client.get(f"/console/models/{VERSION}/evidence")
    assert refused.status_code == 403 and "reading an evidence pack" in refused.text

    login(client, world.reader())
    assert "View the evidence pack" in client.get(f"/console/models/{VERSION}").text
    page = client.get(f"/console/models/{VERSION}/evidence")
    pack = world.get(f"/models/{VERSION}/evidence").json()
    assert page.status_code == 200 and pack["format"] in page.text
    assert f"{pack['summary']['evidenced']} evidenced" in page.text
    for obligation in pack["obligations"][:3]:
        assert obligation["title"] in page.text.replace("&#39;", "'").replace("&amp;", "&")
    first_entry = pack["audit_entries"][0]["event_id"]
    assert f'href="/console/audit/entries/{first_entry}"' in page.text
    download = client.get(f"/console/models/{VERSION}/evidence.json")
    assert download.headers["content-disposition"] == f'attachment; filename="{VERSION}.evidence.json"'
    assert json.loads(download.content)["obligations"] == pack["obligations"]
    rendered = client.get(f"/console/models/{VERSION}/evidence.html")
    assert rendered.headers["content-disposition"].startswith("attachment;") and "<table>" in rendered.text
    assert client.get("/console/models/not-a-version/evidence").status_code == 404


# ---------------------------------------------------------------- consistency


async def test_consistency_proof_between_two_signed_heads(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    await registered(world, "ev-1")
    client = world.client
    login(client, world.reader())
    half = len(world.runtime.published) // 2
    ledger = fill_ledger(world.settings, world.runtime.published[:half])
    assert "fewer than two tree heads" in client.get("/console/audit/consistency").text
    ledger.append(world.runtime.published[half:])
    ledger.sign_now()
    page = client.get("/console/audit/consistency")
    assert page.status_code == 200 and "tunegate.audit.consistency-proof/v1" in page.text
    assert f"size {half} to size {len(world.runtime.published)}" in page.text
    assert "/console/static/verify.js" in page.text and "BEGIN PUBLIC KEY" in page.text
    assert "/console/audit/consistency" in client.get("/console/audit").text
    not_signed = client.get("/console/audit/consistency", params={"old": half - 1})
    assert not_signed.status_code == 422 and f"no tree head of size {half - 1}" in not_signed.text
    backwards = client.get("/console/audit/consistency", params={"old": len(world.runtime.published), "new": half})
    assert backwards.status_code == 422 and "must not be larger" in backwards.text
    assert client.get("/console/audit/consistency", params={"old": "two"}).status_code == 422
    monkeypatch.setattr(audit_pages, "HEADS_LISTED", 1)  # only the newest head listed, but the chosen one stays
    listed = client.get("/console/audit/consistency", params={"old": half}).text
    assert f'<option value="{half}" selected>' in listed and listed.count("<option ") == 4  # two selects
    login(client, world.principal("carol", "approver"))
    assert client.get("/console/audit/consistency").status_code == 403
