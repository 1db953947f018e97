"""The console in a real browser (Debian's Chromium driven by Playwright): a second approver logs in and
approves a high-risk job, an auditor opens a ledger entry and the page verifies its inclusion proof with
WebCrypto (the same JavaScript also checks the ledger's golden vectors, tests/audit/vectors/, and Merkle
paths computed by shared/merkle.py), and a deployer deploys an approved model version under an alias.
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
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.merkle import inclusion_path, leaf_hash, merkle_root
from shared.security.keys import public_key_pem
from tests.registry.console_support import fill_ledger
from tests.registry.registry_support import World, bearer, make_spec
from tests.registry.test_model_versions import VERSION, registered

CHROMIUM = Path("/usr/bin/chromium")
VECTORS = Path(__file__).parents[1] / "audit" / "vectors"
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
