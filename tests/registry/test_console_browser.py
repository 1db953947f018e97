"""The console in a real browser (Debian's Chromium driven by Playwright): a second approver logs in and
approves a high-risk job, an auditor opens a ledger entry and the page verifies its inclusion proof with
WebCrypto; the same JavaScript also checks the ledger's golden vectors (tests/audit/vectors/) and Merkle
paths computed by shared/merkle.py. Screenshots of every page are kept under the test's tmp dir (printed)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.merkle import inclusion_path, leaf_hash, merkle_root
from shared.security.keys import public_key_pem
from tests.registry.console_support import fill_ledger
from tests.registry.registry_support import World, make_spec

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


def test_second_approver_and_auditor_in_chromium(world: World, console_url: str, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    print(f"console screenshots: {shots}")
    asyncio.run(world.submit(make_spec(domain="employment")))
    asyncio.run(world.scanned())
    assert world.decide("job_1", world.principal("bob", "approver"), decision="approve").status_code == 200
    carol, auditor = world.principal("carol", "approver"), world.reader()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 900})

        def log_in(token: str, target: str) -> None:
            page.goto(console_url + target)
            page.get_by_label("Principal token").fill(token)
            page.get_by_role("button", name="Log in").click()

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        log_in(carol, "/console/jobs")
        shot("1-jobs")
        page.get_by_role("link", name="job_1").click()
        sync_api.expect(page.get_by_text("1 more", exact=True)).to_be_visible()
        shot("2-job-before")
        page.get_by_label("Comment (an override needs one)").fill("second look: fine")
        page.get_by_role("button", name="Record decision").click()
        sync_api.expect(page.locator("h1 .state")).to_have_text("training")
        sync_api.expect(page.get_by_text("bob, carol", exact=True)).to_be_visible()
        shot("3-job-approved")
        assert world.runtime.of_type("training.requested")[0].payload["approvers"] == ["bob", "carol"]
        page.get_by_role("button", name="Log out").click()

        fill_ledger(world.settings, world.runtime.published)
        log_in(auditor, "/console/audit?subject=job_1&type=approval.granted")
        shot("4-audit")
        sync_api.expect(page.locator("tbody tr")).to_have_count(2)  # one approval.granted per approver
        page.locator("tbody a").first.click()
        sync_api.expect(page.locator("dd", has_text="approval.granted")).to_be_visible()
        page.get_by_role("button", name="Verify in this browser").click()
        result = page.locator("#verify-result")
        sync_api.expect(result).to_contain_text("Verified: event ")
        shot("5-proof-verified")
        other_key = public_key_pem(Ed25519PrivateKey.generate().public_key())
        page.get_by_label("Log public key you trust (PEM)").fill(other_key)
        page.get_by_role("button", name="Verify in this browser").click()
        sync_api.expect(result).to_contain_text("NOT verified: the tree head names log")
        shot("6-proof-wrong-key")

        golden = json.loads((VECTORS / "inclusion-proof.json").read_text())
        checked = page.evaluate(CHECK_VECTORS, [merkle_vectors(), golden, (VECTORS / "log.pub").read_text()])
        browser.close()
    assert checked["wrong"] == []
    assert checked["good"]["ok"], checked["good"]
    assert not checked["bad"]["ok"] and "entry_hash does not match" in checked["bad"]["detail"]
    assert checked["canonical"] == json.dumps(
        {"b": 'é\u0001\n"', "a": [1, None, True]}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert sorted(p.name for p in shots.iterdir()) == [
        f"{n}.png"
        for n in ("1-jobs", "2-job-before", "3-job-approved", "4-audit", "5-proof-verified", "6-proof-wrong-key")
    ]
