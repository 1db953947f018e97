"""Erasure through lineage, in-process: two subjects' records in a scanned dataset, a trained, approved and
deployed version; erasing one subject retires the version at once (model.retired), submits a retraining
job on the stored copy minus the subject's records, and when the replacement passes the gate and is
deployed under the same alias the signed certificate is issued; it verifies offline against the audit log's key
alone (anchored by the ledger's dataset.erasure.completed entry), a tampered one fails."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.adapters.keys import local_public_key_path
from services.audit.application import open_ledger
from services.registry.adapters import repository
from services.registry.adapters.credentials import CredentialStore
from services.registry.domain.policy import ErasurePolicy
from services.registry.erasure import certificate
from services.registry.erasure.service import request_erasure, retire_when_due
from shared.security.keys import load_public_key, public_key_pem
from shared.security.signing import KeyDirectory
from tests.registry.erasure_support import (
    ScannerSide,
    approve_and_deploy,
    post,
    scan,
    store_of,
    train_and_evaluate,
    write_dataset,
)
from tests.registry.registry_support import World, make_spec
from tests.registry.test_registry_evaluation import tunegate, wired  # noqa: F401 - the fixture

ALIAS = "support-triage"


def emitted(world: World, event_type: str) -> list[dict[str, Any]]:
    return [e.payload for e in world.runtime.of_type(event_type)]


@pytest.mark.anyio
async def test_erasure_retires_retrains_and_certifies(wired: World, tmp_path: Path) -> None:  # noqa: F811
    world = wired
    root = world.admin()
    CredentialStore(world.settings).save_token("root", root)
    bob = world.principal("bob", "approver")
    dora = world.principal("dora", "deployer")
    await world.submit(make_spec(), "job_1")
    scanner = ScannerSide(world, tmp_path / "scanner.sqlite3")
    first = await scan(world, "job_1", write_dataset(tmp_path / "tickets.jsonl"), tmp_path / "scan-1")
    scanner.record("job_1", first)
    await train_and_evaluate(world, "job_1", bob, first.fingerprint)
    assert approve_and_deploy(world, "ticket-triage.v1", bob, dora, ALIAS).status_code == 200

    # Only an admin may erase; bad input is a clear 4xx.
    assert post(world, "/erasures", bob, subject="cust-ann", reason="Art. 17 request 2026-114").status_code == 403
    assert post(world, "/erasures", root, subject="", reason="x").status_code == 422

    response = tunegate("erase", "--subject", "cust-ann", "--reason", "Art. 17 request 2026-114", "--as", "root",
                        "--json")
    assert response.exit_code == 0, response.output
    erasure = json.loads(response.stdout)
    assert [d["job_id"] for d in erasure["datasets"]] == ["job_1"]
    assert len(erasure["datasets"][0]["record_hashes"]) == 2  # ann's two records, not bob's
    assert erasure["versions"] == ["ticket-triage.v1"] and erasure["served"] == {ALIAS: "ticket-triage.v1"}
    assert [(s["name"], s["status"]) for s in erasure["steps"]] == [
        ("located", "done"), ("tainted", "done"), ("retired", "done"), ("retraining_submitted", "done"),
    ]
    assert erasure["state"] == "awaiting replacement_deployed"
    v1_adapter = world.get("/models/ticket-triage.v1").json()["artifact"]["sha256"]
    assert not store_of(world).path_of(v1_adapter).exists()  # its weights may have memorised the records
    [retired] = emitted(world, "model.retired")
    assert retired["version_id"] == "ticket-triage.v1" and retired["alias"] == ALIAS  # the gateway stops serving
    assert world.get("/aliases").json()[0]["version_id"] is None
    # The subject's id never leaves the request, not even as the scanner's plain hash.
    wire = json.dumps([e.payload for e in world.runtime.published])
    assert "cust-ann" not in wire and hashlib.sha256(b"cust-ann").hexdigest() not in wire
    assert world.get(f"/erasures/{erasure['id']}/certificate", root).status_code == 409  # not issued yet
    assert tunegate("erasure", "show", "../etc", "--as", "root").exit_code == 2
    again = post(world, "/erasures", root, subject="cust-ann", reason="duplicate")
    assert again.status_code == 409 and erasure["id"] in again.json()["detail"]

    # The retraining job: same spec, on the stored copy without ann's records, through the whole gate.
    retrain = [a["job_id"] for a in emitted(world, "job.accepted") if a["job_id"] != "job_1"]
    assert len(retrain) == 1
    cleaned = world.get(f"/jobs/{retrain[0]}").json()["spec"]["dataset"]
    copy_path = store_of(world).resolve(cleaned["uri"])
    assert b"cust-ann" not in copy_path.read_bytes() and copy_path.read_bytes().count(b"cust-bob") == 2
    second = await scan(world, retrain[0], copy_path, tmp_path / "scan-2")
    scanner.record(retrain[0], second)
    assert second.fingerprint != first.fingerprint
    await train_and_evaluate(world, retrain[0], bob, second.fingerprint)
    assert post(world, "/models/ticket-triage.v1/deployments", dora, alias=ALIAS, tenants=["acme"]).status_code == 409
    assert approve_and_deploy(world, "ticket-triage.v2", bob, dora, ALIAS).status_code == 200
    waiting = world.get(f"/erasures/{erasure['id']}", root).json()
    assert waiting["state"] == "awaiting artefacts_deleted" and waiting["replacements"] == {ALIAS: "ticket-triage.v2"}

    # The scanner deletes its raw and redacted copies of job_1's dataset (the retraining copy stays).
    [located] = [e for e in world.runtime.of_type("dataset.erasure.progressed") if e.payload["step"] == "located"]
    [shredded] = await scanner.erase(located)
    assert sorted(shredded.payload["deleted"]) == sorted({first.source.sha256, first.dataset.sha256})
    for ref in (first.source, first.dataset):
        assert not store_of(world).path_of(ref.sha256).exists()
    assert store_of(world).resolve(cleaned["uri"]).exists()

    done = world.get(f"/erasures/{erasure['id']}", world.admin("root2")).json()
    assert done["state"] == "completed"
    [completed] = emitted(world, "dataset.erasure.completed")
    assert completed["affected_versions"] == ["ticket-triage.v1"]
    cert = world.get(f"/erasures/{erasure['id']}/certificate", root).json()
    assert certificate.digest(cert) == completed["certificate_sha256"]

    [public] = KeyDirectory(world.settings.keys_dir).public_keys("registry").values()
    assert certificate.verify(cert, public) == []
    # Every step's event is named, so each can be proved in the audit ledger.
    progressed = {e.event_id for e in world.runtime.of_type("dataset.erasure.progressed")}
    assert {s["event_id"] for s in cert["steps"]} <= progressed

    tampered = copy.deepcopy(cert)
    tampered["replacements"][0]["record_hashes"].append(cert["affected_datasets"][0]["record_hashes"][0])
    problems = certificate.verify(tampered, public)
    assert any("signature" in p for p in problems) and any("erased record" in p for p in problems)
    forged = copy.deepcopy(cert)
    forged["affected_versions"] = []
    assert any("signature" in p for p in certificate.verify(forged, public))

    # Through the CLI, with the audit ledger's inclusion proof of every step attached and checked.
    ledger = open_ledger(world.settings)
    ledger.append(world.runtime.published)
    ledger.sign_now()
    log_key_file = local_public_key_path(world.settings)
    shown = tunegate("erasure", "show", erasure["id"], "--as", "root")
    assert shown.exit_code == 0 and "certificate_issued" in shown.stdout
    listed = tunegate("erasure", "list", "--as", "root", "--json")
    assert [e["state"] for e in json.loads(listed.stdout)] == ["completed"]
    out = tmp_path / "certificate.json"
    written = tunegate("erasure", "show", erasure["id"], "--certificate", str(out), "--as", "root")
    assert written.exit_code == 0 and "audit proof(s)" in written.stdout, written.output
    verified = tunegate("erasure", "verify", str(out), "--public-key", str(log_key_file))
    assert verified.exit_code == 0, verified.output
    assert f"audit anchor and {len(cert['steps'])} step proof(s), proof of absence, registry signature verify" in (
        verified.stdout), verified.output
    anchored = json.loads(out.read_text())
    assert_anchored_against_the_audit_key_alone(anchored, load_public_key(log_key_file.read_bytes()))
    wrong_key = tmp_path / "wrong.pub"
    wrong_key.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()).encode())
    refused = tunegate("erasure", "verify", str(out), "--public-key", str(wrong_key))
    assert refused.exit_code == 1 and "completion: tree head" in refused.output, refused.output
    document = json.loads(out.read_text())
    document["replacements"][0]["record_hashes"].append(cert["affected_datasets"][0]["record_hashes"][0])
    out.write_text(json.dumps(document))
    failed = tunegate("erasure", "verify", str(out))
    assert failed.exit_code == 1 and "erased record" in failed.stdout
    (tmp_path / "junk.json").write_text("not json")
    assert tunegate("erasure", "verify", str(tmp_path / "junk.json")).exit_code == 2


def assert_anchored_against_the_audit_key_alone(anchored: dict[str, Any], log_key: Ed25519PublicKey) -> None:
    """With no registry key at all the certificate verifies through its ledger anchor; every way of passing
    off another body, another entry's proof or another key is named."""
    assert certificate.verify(anchored, None, log_key) == []
    completion_id = anchored["completion"]["event_id"]
    assert completion_id in anchored["audit_proofs"]

    # An altered body, even re-signed with a key of the forger's own: the ledger names another digest.
    altered = copy.deepcopy(anchored)
    altered["affected_versions"] = []
    forger = Ed25519PrivateKey.generate()
    altered = certificate.with_completion(certificate.sign(altered, forger, "registry"), completion_id,
                                          altered["completion"]["payload"]) | {"audit_proofs": altered["audit_proofs"]}
    assert any("the certificate was altered" in p for p in certificate.verify(altered, None, log_key))
    assert certificate.verify(altered, forger.public_key()) == []  # the forger's own signature alone would pass
    # ... and a completion payload rewritten to name the altered body no longer hashes to the ledger's entry.
    altered["completion"]["payload"]["certificate_sha256"] = certificate.digest(altered)
    assert any("not the one the ledger recorded" in p for p in certificate.verify(altered, None, log_key))

    # A proof of another entry: a step's event passed off as the completion, or its proof under the right id.
    step_event = anchored["steps"][0]["event_id"]
    other = copy.deepcopy(anchored)
    other["completion"]["event_id"] = step_event
    assert any("as dataset.erasure.progressed, not dataset.erasure.completed" in p
               for p in certificate.verify(other, None, log_key))
    swapped = copy.deepcopy(anchored)
    swapped["audit_proofs"][completion_id] = anchored["audit_proofs"][step_event]
    assert any(f"the proof is of event {step_event}, not {completion_id}" in p
               for p in certificate.verify(swapped, None, log_key))

    # The wrong key: the tree heads were signed by another log.
    wrong = certificate.verify(anchored, None, Ed25519PrivateKey.generate().public_key())
    assert wrong and all("not this key's log" in p for p in wrong), wrong
    # Without its completion the certificate is not anchored, whatever else it carries.
    bare = {k: v for k, v in anchored.items() if k != "completion"}
    assert any("not anchored" in p for p in certificate.verify(bare, None, log_key))


@pytest.mark.anyio
async def test_a_grace_period_keeps_serving_until_the_timer_retires(world: World, tmp_path: Path) -> None:
    bob = world.principal("bob", "approver")
    dora = world.principal("dora", "deployer")
    await world.submit(make_spec(), "job_1")
    first = await scan(world, "job_1", write_dataset(tmp_path / "tickets.jsonl"), tmp_path / "scan-1")
    await train_and_evaluate(world, "job_1", bob, first.fingerprint)
    assert approve_and_deploy(world, "ticket-triage.v1", bob, dora, ALIAS).status_code == 200
    policy = world.governance.policy.model_copy(update={"erasure": ErasurePolicy(retirement_grace_hours=24)})
    governance = replace(world.governance, policy=policy)
    world.admin()
    with world.runtime.db.transaction() as session:
        admin = repository.require_principal(session, "root")
    erasure = await request_erasure(world.runtime, governance, admin, subject_id="cust-bob", reason="Art. 17")
    assert erasure.state == "awaiting retired" and emitted(world, "model.retired") == []
    world.clock.advance(23 * 3600)
    assert await retire_when_due(world.runtime, governance) == []
    world.clock.advance(3600)
    assert await retire_when_due(world.runtime, governance) == [erasure.id]
    assert [r["version_id"] for r in emitted(world, "model.retired")] == ["ticket-triage.v1"]
    assert world.get("/models/ticket-triage.v1").json()["state"] == "retired"
