"""The console in a real browser (Debian's Chromium driven by Playwright): a second approver logs in and
approves a high-risk job, an auditor opens a ledger entry and the page verifies its inclusion proof with
WebCrypto (the same JavaScript also checks the ledger's golden vectors, tests/audit/vectors/, and Merkle
paths computed by shared/merkle.py), and a deployer deploys an approved model version under an alias.
Then: a job's loss chart and ETA follow training live, a deployer rolls an alias back (by keyboard), an
approver opens and closes an incident, and an auditor reads an evidence pack and an erasure certificate and
verifies the consistency of two signed tree heads in the browser (and the consistency vectors).
Screenshots of every page are kept under the test's tmp dir (printed)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.events.envelope import Envelope
from shared.events.payloads import TrainingCompleted, TrainingProgress
from shared.merkle import consistency_path, inclusion_path, leaf_hash, merkle_root
from shared.security.keys import public_key_pem
from tests.registry.console_support import fill_ledger
from tests.registry.registry_support import World, bearer, make_spec, sha
from tests.registry.test_model_versions import VERSION, registered
from tests.registry.test_registry_evaluation import ADAPTER

CHROMIUM = Path("/usr/bin/chromium")
VECTORS = Path(__file__).parents[1] / "audit" / "vectors"
V2 = "ticket-triage.v2"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(
    shutil.which(str(CHROMIUM)) is None, reason=f"no Chromium at {CHROMIUM} (Debian package `chromium`)"
)


def _serve(world: World) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(world.client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console's server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture
def console_url(world: World) -> Iterator[str]:
    yield from _serve(world)


def merkle_vectors() -> list[dict[str, object]]:
    """Inclusion paths for every leaf of trees of 1 to 9 entries, as shared/merkle.py computes them."""
    cases = []
    for size in range(1, 10):
        entries = [f"entry-{i}".encode() for i in range(size)]

        def subtree(start: int, end: int, entries: list[bytes] = entries) -> bytes:
            return merkle_root(entries[start:end])

        for index in range(size):
            path = inclusion_path(index, size, subtree)
            cases.append(
                {
                    "leaf": leaf_hash(entries[index]).hex(),
                    "index": index,
                    "size": size,
                    "path": [node.hex() for node in path],
                    "root": merkle_root(entries).hex(),
                }
            )
    return cases


CHECK_VECTORS = """async ([cases, golden, goldenKey]) => {
  const V = TunegateVerify;
  const wrong = [];
  for (const c of cases) {
    const root = await V.rootFromInclusion(V.hexToBytes(c.leaf), c.index, c.size, c.path.map(V.hexToBytes));
    if (root === null || V.bytesToHex(root) !== c.root) wrong.push(`size ${c.size} index ${c.index}`);
  }
  const good = await V.verifyProof(golden, goldenKey);
  const altered = JSON.parse(JSON.stringify(golden));
  altered.entry.actor = altered.entry.actor + "x";
  const bad = await V.verifyProof(altered, goldenKey);
  return {wrong, good, bad, canonical: V.canonicalJson({"b": "é\\u0001\\n\\"", "a": [1, null, true]})};
}"""


# Run on every page a screenshot is taken of: each form control has a label, the page has one h1, every
# element with text of its own reaches WCAG AA contrast (4.5:1) against the background it is drawn on, and the
# page fits the 1366-pixel laptop viewport without sideways scrolling.
ACCESSIBILITY = """() => {
  const rgb = (css) => {
    const m = css.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(",").map(Number);
    return { r, g, b, a };
  };
  const luminance = ({ r, g, b }) => {
    const f = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const lowContrast = [];
  for (const el of document.querySelectorAll("body *")) {
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const [hi, lo] = [luminance(rgb(getComputedStyle(el).color)), luminance(background(el))].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5) lowContrast.push(`${el.tagName.toLowerCase()}.${el.className} ${ratio.toFixed(2)}:1`);
  }
  const unlabelled = [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
    .filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label"))
    .map((c) => c.id || c.name);
  const fits = document.documentElement.scrollWidth <= window.innerWidth;  // no sideways scrolling on a laptop
  return { lowContrast, unlabelled, h1: document.querySelectorAll("h1").length, fits };
}"""


class Session:
    """One browser page on the console, with screenshots numbered in the order they are taken."""

    def __init__(self, page: Any, url: str, shots: Path) -> None:
        self.page, self.url, self.shots = page, url, shots

    def log_in(self, token: str, target: str) -> None:
        self.page.goto(self.url + target)
        self.page.get_by_label("Principal token").fill(token)
        self.page.get_by_role("button", name="Log in").click()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        found = self.page.evaluate(ACCESSIBILITY)
        assert found == {"lowContrast": [], "unlabelled": [], "h1": 1, "fits": True}, f"{name}: {found}"


@contextmanager
def browsing(console_url: str, tmp_path: Path) -> Iterator[Session]:
    """Playwright's sync API runs an event loop: start it only after the test's asyncio set-up is done."""
    shots = tmp_path / "screenshots"
    print(f"console screenshots: {shots}")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield Session(browser.new_page(viewport={"width": 1366, "height": 900}), console_url, shots)
        finally:
            browser.close()


def test_second_approver_and_auditor_in_chromium(world: World, console_url: str, tmp_path: Path) -> None:
    asyncio.run(world.submit(make_spec(domain="employment")))
    asyncio.run(world.scanned())
    assert world.decide("job_1", world.principal("bob", "approver"), decision="approve").status_code == 200
    carol, auditor = world.principal("carol", "approver"), world.reader()
    with browsing(console_url, tmp_path) as browse:
        page, expect = browse.page, sync_api.expect

        browse.log_in(carol, "/console/jobs")
        browse.shot("1-jobs")
        page.get_by_role("link", name="job_1").click()
        expect(page.get_by_text("1 more", exact=True)).to_be_visible()
        browse.shot("2-job-before")
        page.get_by_label("Comment (an override needs one)").fill("second look: fine")
        page.get_by_role("button", name="Record decision").click()
        expect(page.locator("h1 .state")).to_have_text("training")
        expect(page.get_by_text("bob, carol", exact=True)).to_be_visible()
        browse.shot("3-job-approved")
        assert world.runtime.of_type("training.requested")[0].payload["approvers"] == ["bob", "carol"]
        page.get_by_role("button", name="Log out").click()

        fill_ledger(world.settings, world.runtime.published)
        browse.log_in(auditor, "/console/audit?subject=job_1&type=approval.granted")
        browse.shot("4-audit")
        expect(page.locator("tbody tr")).to_have_count(2)  # one approval.granted per approver
        page.locator("tbody a").first.click()
        expect(page.locator("dd", has_text="approval.granted")).to_be_visible()
        page.get_by_role("button", name="Verify in this browser").click()
        result = page.locator("#verify-result")
        expect(result).to_contain_text("Verified: event ")
        browse.shot("5-proof-verified")
        other_key = public_key_pem(Ed25519PrivateKey.generate().public_key())
        page.get_by_label("Log public key you trust (PEM)").fill(other_key)
        page.get_by_role("button", name="Verify in this browser").click()
        expect(result).to_contain_text("NOT verified: the tree head names log")
        browse.shot("6-proof-wrong-key")

        golden = json.loads((VECTORS / "inclusion-proof.json").read_text())
        checked = page.evaluate(CHECK_VECTORS, [merkle_vectors(), golden, (VECTORS / "log.pub").read_text()])
    assert checked["wrong"] == []
    assert checked["good"]["ok"], checked["good"]
    assert not checked["bad"]["ok"] and "entry_hash does not match" in checked["bad"]["detail"]
    assert checked["canonical"] == json.dumps(
        {"b": 'é\u0001\n"', "a": [1, None, True]}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert sorted(p.name for p in browse.shots.iterdir()) == [
        f"{n}.png"
        for n in ("1-jobs", "2-job-before", "3-job-approved", "4-audit", "5-proof-verified", "6-proof-wrong-key")
    ]


def test_deployer_deploys_a_version_in_chromium(world: World, console_url: str, tmp_path: Path) -> None:
    approver = asyncio.run(registered(world, "ev-1"))
    approved = world.client.post(f"/models/{VERSION}/approvals", json={"comment": "ok"}, headers=bearer(approver))
    assert approved.json()["state"] == "approved"
    with browsing(console_url, tmp_path) as browse:
        page, expect = browse.page, sync_api.expect

        browse.log_in(world.principal("dora", "deployer"), "/console/models")
        browse.shot("1-models")
        page.get_by_role("link", name=VERSION).click()
        page.get_by_label("Alias").fill("support-triage")
        page.get_by_label("Tenants (comma-separated)").fill("acme")
        browse.shot("2-model-before")
        page.get_by_role("button", name="Deploy").click()
        expect(page.locator("h1 .state")).to_have_text("deployed")
        browse.shot("3-model-deployed")
        page.get_by_role("link", name="View", exact=True).click()
        expect(page.locator("pre")).to_contain_text('"bomFormat": "CycloneDX"')
        browse.shot("4-aibom")
    view = world.get(f"/models/{VERSION}").json()
    assert (view["state"], view["alias"], view["tenants"]) == ("deployed", "support-triage", ["acme"])


def consistency_vectors() -> list[dict[str, object]]:
    """Consistency paths between every pair of sizes 1 <= old <= new <= 9, as shared/merkle.py computes them."""
    entries = [f"entry-{i}".encode() for i in range(9)]

    def subtree(start: int, end: int) -> bytes:
        return merkle_root(entries[start:end])

    return [
        {
            "old": old,
            "new": new,
            "old_root": merkle_root(entries[:old]).hex(),
            "new_root": merkle_root(entries[:new]).hex(),
            "path": [node.hex() for node in consistency_path(old, new, subtree)],
        }
        for new in range(1, 10)
        for old in range(1, new + 1)
    ]


CHECK_CONSISTENCY = """async ([cases, golden, goldenKey]) => {
  const V = TunegateVerify;
  const wrong = [];
  for (const c of cases) {
    const path = c.path.map(V.hexToBytes);
    const [oldRoot, newRoot] = [V.hexToBytes(c.old_root), V.hexToBytes(c.new_root)];
    if (!(await V.verifyConsistencyPath(c.old, c.new, oldRoot, newRoot, path))) wrong.push(`${c.old}->${c.new}`);
    // The new root passed off as the old one must fail (a log that rewrote its history).
    const forged = c.old < c.new && await V.verifyConsistencyPath(c.old, c.new, newRoot, newRoot, path);
    if (forged) wrong.push(`forged ${c.old}->${c.new}`);
  }
  const good = await V.verifyConsistency(golden, goldenKey);
  const altered = JSON.parse(JSON.stringify(golden));
  altered.consistency_path[0] = "00".repeat(32);
  const bad = await V.verifyConsistency(altered, goldenKey);
  return {wrong, good, bad};
}"""


def deliver(world: World, envelope: Envelope) -> None:
    """Hand one event to the registry's handler while the browser is open: Playwright's sync API holds an event
    loop in this thread, so the handler runs on a loop of its own in another."""
    worker = threading.Thread(target=lambda: asyncio.run(world.runtime.deliver(world.handlers, envelope)))
    worker.start()
    worker.join(10)


def progress(world: World, step: int, loss: float, seconds: int) -> None:
    payload = TrainingProgress(job_id="job_1", step=step, total_steps=100, loss=loss)
    deliver(world, Envelope(type="training.progress", producer="trainer", actor="system:trainer", subject="job_1",
                            occurred_at=T0 + timedelta(seconds=seconds), payload=payload.model_dump(mode="json")))


def test_live_training_progress_in_chromium(world: World, console_url: str, tmp_path: Path) -> None:
    bob = world.principal("bob", "approver")
    asyncio.run(world.submit(make_spec()))
    asyncio.run(world.scanned())
    assert world.decide("job_1", bob, decision="approve").status_code == 200
    with browsing(console_url, tmp_path) as browse:
        page, expect = browse.page, sync_api.expect
        browse.log_in(bob, "/console/jobs/job_1")
        text = page.locator("#progress-text")
        expect(text).to_contain_text("Waiting for the first progress report")
        for step, loss, seconds in ((10, 2.4, 0), (20, 1.9, 10), (30, 1.6, 20), (40, 1.5, 30)):
            progress(world, step, loss, seconds)
        # The page polls progress.json: the text, the bar and the line change without a reload.
        expect(text).to_contain_text("Step 40 of 100 (40%), loss 1.5000, ETA 1 min 00 s", timeout=10_000)
        assert page.locator("#loss-line").get_attribute("points").count(",") == 4
        assert page.locator("#progress-bar").evaluate("bar => bar.value") == 40
        browse.shot("1-training-live")
        done = TrainingCompleted(job_id="job_1", artifact=ADAPTER, base_model="tiny", method=make_spec().method,
                                 data_fingerprint=sha("fingerprint"))
        deliver(world, Envelope(type="training.completed", producer="trainer", actor="system:trainer",
                                subject="job_1", payload=done.model_dump(mode="json")))
        expect(text).to_contain_text("finished (trained)", timeout=10_000)
        page.reload()
        expect(page.locator("h1 .state")).to_have_text("trained")
        expect(page.locator("#loss-chart")).to_be_visible()  # the final curve stays on the page
        browse.shot("2-training-final-curve")
        # The accessibility check every screenshot runs does catch faint text and an unlabelled field.
        page.evaluate("""() => {
          const faint = document.createElement("p");
          faint.textContent = "faint";
          faint.style.color = "#999999";
          document.getElementById("main").append(faint, document.createElement("input"));
        }""")
        found = page.evaluate(ACCESSIBILITY)
        assert found["lowContrast"] == ["p. 2.85:1"] and found["unlabelled"] == [""]
    assert sorted(p.name for p in browse.shots.iterdir()) == ["1-training-live.png", "2-training-final-curve.png"]


def test_rollback_incidents_evidence_erasure_and_consistency_in_chromium(
    world: World, console_url: str, tmp_path: Path
) -> None:
    bob = asyncio.run(registered(world, "ev-1", "ev-2"))
    dora = world.principal("dora", "deployer")
    for version in (VERSION, V2):
        world.client.post(f"/models/{version}/approvals", json={}, headers=bearer(bob))
        deployed = world.client.post(f"/models/{version}/deployments", json={"alias": "support-triage",
                                     "tenants": ["acme"]}, headers=bearer(dora))
        assert deployed.status_code == 200
    root = world.admin()
    erasure = world.client.post("/erasures", json={"subject": "customer-4711", "reason": "Art. 17 by e-mail"},
                                headers=bearer(root)).json()
    with browsing(console_url, tmp_path) as browse:
        page, expect = browse.page, sync_api.expect

        browse.log_in(dora, f"/console/models/{V2}")
        browse.shot("1-rollback-before")
        page.get_by_label("Reason for rolling back").fill("v2 answers in prose")
        page.keyboard.press("Tab")  # keyboard only: the button is the next stop after the reason
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_contain_text(VERSION)
        expect(page.locator("h1 .state")).to_have_text("deployed")
        browse.shot("2-rollback-after")
        page.get_by_role("button", name="Log out").click()

        browse.log_in(bob, "/console/jobs")
        page.get_by_role("link", name="Incidents").click()
        page.get_by_label("Title").fill("Leaked a ticket's e-mail address")
        page.get_by_label("Severity (sets the Art. 73 report deadline)").select_option("serious")
        page.get_by_label("Affected model versions (comma-separated)").fill(VERSION)
        page.get_by_label("Description").fill("reported by a customer")
        browse.shot("3-incidents")
        page.get_by_role("button", name="Open incident").click()
        expect(page.locator("h1 .state")).to_have_text("open")
        expect(page.get_by_text("EU AI Act Art. 73(2)")).to_be_visible()
        browse.shot("4-incident-open")
        page.get_by_label("Resolution (closing does not discharge a report still due)").fill("filter fixed")
        page.get_by_role("button", name="Close incident").click()
        expect(page.locator("h1 .state")).to_have_text("closed")
        browse.shot("5-incident-closed")
        page.get_by_role("button", name="Log out").click()

        events = world.runtime.published
        ledger = fill_ledger(world.settings, events[: len(events) // 2])
        ledger.append(events[len(events) // 2:])
        ledger.sign_now()
        browse.log_in(world.reader(), f"/console/models/{VERSION}")
        page.get_by_role("link", name="View the evidence pack").click()
        expect(page.locator("h1")).to_contain_text("Evidence pack")
        browse.shot("6-evidence")
        page.get_by_role("link", name="Erasures").click()
        page.get_by_role("link", name=erasure["id"]).click()
        expect(page.get_by_text("Download the certificate")).to_be_visible()
        browse.shot("7-erasure")
        page.get_by_role("link", name="Audit ledger").click()
        page.get_by_role("link", name="Check the log's consistency between two signed heads").click()
        page.get_by_role("button", name="Verify in this browser").click()
        result = page.locator("#verify-result")
        expect(result).to_contain_text(f"Verified: the signed tree of size {len(events) // 2} (signed ")
        browse.shot("8-consistency-verified")
        other_key = public_key_pem(Ed25519PrivateKey.generate().public_key())
        page.get_by_label("Log public key you trust (PEM)").fill(other_key)
        page.get_by_role("button", name="Verify in this browser").click()
        expect(result).to_contain_text("NOT verified: old head: the tree head names log")
        browse.shot("9-consistency-wrong-key")

        golden = json.loads((VECTORS / "consistency-proof.json").read_text())
        checked = page.evaluate(CHECK_CONSISTENCY, [consistency_vectors(), golden, (VECTORS / "log.pub").read_text()])
    assert checked["wrong"] == []
    assert checked["good"]["ok"], checked["good"]
    assert not checked["bad"]["ok"] and "not proven a prefix" in checked["bad"]["detail"]
    view = world.get(f"/models/{V2}").json()
    assert view["state"] == "deprecated" and world.runtime.of_type("model.deployed")[-1].payload["rollback"] is True
    assert len(list(browse.shots.iterdir())) == 9
