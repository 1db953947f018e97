"""The compliance evidence pack of a registered, evaluated, approved and deployed version with one open
incident: GET /models/{version}/evidence and `tunegate report`. The registry's events go into a real audit
ledger (services/audit) with a signed tree head, so every audit entry in the pack comes with an inclusion
proof that verifies against the log key; gaps are listed as gaps; the HTML is self-contained, every internal
link resolves, and (when Chromium is installed) it renders to a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.audit.application import open_ledger
from services.audit.domain.proofs import InclusionProofDocument, verify_proof_document
from services.registry.adapters.client import RegistryClient
from services.registry.adapters.credentials import CredentialStore
from services.registry.evidence.check import Evidence, decide
from services.registry.evidence.pack import load_obligations
from shared.security.keys import load_public_key
from shared.storage.artifacts import ArtifactStore
from tests.registry.registry_support import World, bearer
from tests.registry.test_model_versions import VERSION, deployer, registered
from tests.registry.test_registry_evaluation import completed, tunegate, wired  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def post(world: World, path: str, token: str | None, **body: Any) -> Any:
    return world.client.post(path, json=body, headers=bearer(token))


async def scenario(world: World, *, ledger: bool = True) -> tuple[str, str]:
    """v1 registered (its report in the store), approved, deployed watermarked, one open incident; every event
    the registry emitted is in the audit ledger under a signed tree head. Returns (approver, incident id)."""
    store = ArtifactStore(world.settings.home_dir / "artifacts")
    bob = await registered(world)
    await completed(world, "ev-1", passed=True, store=store)
    assert post(world, f"/models/{VERSION}/approvals", bob).status_code == 200
    deployed = post(world, f"/models/{VERSION}/deployments", deployer(world), alias="support-triage",
                    tenants=["acme"], watermark=True)
    assert deployed.status_code == 200, deployed.text
    opened = post(world, "/incidents", bob, title="Answer quoted a customer's e-mail", severity="serious",
                  affected_versions=[VERSION])
    assert opened.status_code == 201, opened.text
    if ledger:
        audit = open_ledger(world.settings)
        audit.append(world.runtime.published)
        audit.sign_now()
    return bob, opened.json()["id"]


def statuses(pack: dict[str, Any]) -> dict[str, str]:
    return {o["id"]: o["status"] for o in pack["obligations"]}


async def test_the_pack_maps_obligations_to_evidence_with_verified_proofs(world: World) -> None:
    bob, incident_id = await scenario(world)
    assert world.get(f"/models/{VERSION}/evidence", world.principal("rita", "requester")).status_code == 403
    assert world.get("/models/nope.v9/evidence", bob).status_code == 404
    response = world.get(f"/models/{VERSION}/evidence", world.principal("ada", "auditor"))
    assert response.status_code == 200, response.text
    pack = response.json()

    spec = load_obligations()
    assert [o["id"] for o in pack["obligations"]] == [o.id for o in spec.obligations]
    summary = pack["summary"]
    assert sum(summary[k] for k in ("evidenced", "partly", "gap", "not_applicable")) == len(spec.obligations)
    found = statuses(pack)
    # A minimal-risk version: the high-risk articles are out of scope, Art. 50 marking is in (watermarked).
    assert found["eu-art-9"] == found["eu-art-73"] == "not_applicable" and found["eu-art-50"] == "evidenced"
    assert found["iso-a-6-2-8"] == "evidenced" and found["genai-value-chain"] == "evidenced"
    # The test evaluation ran task_quality and pii_leakage only: the other suites are gaps, named as such.
    assert found["genai-confabulation"] == "gap" and found["genai-data-privacy"] == "partly"
    assert found["nist-manage"] == "partly"  # no evaluation ran after deployment
    [manage] = [o for o in pack["obligations"] if o["id"] == "nist-manage"]
    assert any(g.startswith("monitoring_results: no evaluation of job job_1 finished after") for g in manage["gaps"])

    incidents = pack["evidence"]["incidents"]
    assert incidents["status"] == "present" and incidents["items"][0]["ref"] == incident_id
    assert incidents["ledger_entries"]  # incident.opened is in the ledger
    # Every entry about the job, the version and the incident, each proven against the log key.
    key = load_public_key((world.settings.home_dir / "keys" / "audit_ed25519.pub").read_bytes())
    entries = pack["audit_entries"]
    assert {"model.registered", "model.deployed", "incident.opened", "approval.granted"} <= {e["type"] for e in entries}
    assert summary["proofs_verified"] == summary["audit_entries"] == len(entries)
    for entry in entries:
        assert verify_proof_document(InclusionProofDocument.model_validate(entry["proof"]), key).ok
    known = {e["event_id"] for e in entries}
    for evidence in pack["evidence"].values():
        assert set(evidence["ledger_entries"]) <= known
        assert evidence["status"] == "present" or evidence["missing"], evidence["kind"]


def test_each_obligation_is_decided_from_its_evidence_only() -> None:
    spec = load_obligations()
    evidence = {k: Evidence(kind=k, title=v.title, status="present", summary="ok")
                for k, v in spec.evidence_kinds.items()}
    evidence["eu_database_registration"] = evidence["eu_database_registration"].model_copy(
        update={"status": "absent", "missing": "not recorded"})
    evidence["monitoring_results"] = evidence["monitoring_results"].model_copy(update={"status": "absent"})
    evidence["incidents"] = evidence["incidents"].model_copy(update={"status": "absent"})
    high = {o.id: decide(o, evidence, "high") for o in spec.obligations}
    assert high["eu-annex-8"].status == "partly"
    assert high["eu-annex-8"].gaps == ["eu_database_registration: not recorded"]
    assert high["eu-art-72"].status == high["eu-art-73"].status == "gap" and high["eu-art-12"].status == "evidenced"
    minimal = {o.id: decide(o, evidence, "minimal").status for o in spec.obligations}
    assert minimal["eu-art-73"] == "not_applicable" and minimal["eu-art-50"] == "evidenced"


async def test_without_a_ledger_the_record_keeping_obligations_are_gaps(world: World) -> None:
    bob, _ = await scenario(world, ledger=False)
    pack = world.get(f"/models/{VERSION}/evidence", bob).json()
    assert pack["ledger"]["available"] is False and pack["audit_entries"] == []
    assert pack["evidence"]["audit_trail"]["status"] == "absent"
    assert statuses(pack)["iso-a-6-2-8"] == "gap"


async def test_a_tampered_proof_fails_the_report(
    wired: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    bob, _ = await scenario(wired)
    CredentialStore(wired.settings).save_token("bob", bob)
    honest = RegistryClient.get_evidence

    def tampered(self: RegistryClient, version_id: str) -> dict[str, Any]:
        pack = honest(self, version_id)
        proof = pack["audit_entries"][0]["proof"]
        proof["entry"]["payload_sha256"] = "0" * 64
        return pack

    monkeypatch.setattr(RegistryClient, "get_evidence", tampered)
    result = tunegate("report", VERSION, "--out", str(tmp_path / "pack"), "--as", "bob")
    assert result.exit_code == 1 and "1 inclusion proof(s) did not verify" in " ".join(result.stderr.split())


async def test_report_writes_json_and_self_contained_html(wired: World, tmp_path: Path) -> None:  # noqa: F811
    bob, _ = await scenario(wired)
    CredentialStore(wired.settings).save_token("bob", bob)
    out = tmp_path / "pack"
    assert tunegate("report", "Bad.v1", "--out", str(out), "--as", "bob").exit_code == 2
    result = tunegate("report", VERSION, "--out", str(out), "--as", "bob")
    assert result.exit_code == 0, result.output
    pack = json.loads((out / "evidence.json").read_text())
    s = pack["summary"]
    assert f"{s['evidenced']} evidenced, {s['partly']} partly, {s['gap']} gap" in " ".join(result.stdout.split())
    html = (out / "evidence.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "self-contained: nothing fetched from elsewhere"
    assert "<script" not in html and '<html lang="en">' in html and html.count("<caption>") == 3
    ids = set(re.findall(r'id="([^"]+)"', html))
    links = set(re.findall(r'href="#([^"]+)"', html))
    assert links and links <= ids, sorted(links - ids)
    assert all(f"entry-{e['event_id']}" in ids for e in pack["audit_entries"])

    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium): the screenshot check did not run")
    shot, pdf = tmp_path / "evidence.png", tmp_path / "evidence.pdf"
    for output in (f"--screenshot={shot}", f"--print-to-pdf={pdf}"):
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", output, "--window-size=1280,2000",
                        (out / "evidence.html").as_uri()], check=True, timeout=60, capture_output=True)
    assert shot.stat().st_size > 100_000  # a blank page of that size is about 14 KB
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000
