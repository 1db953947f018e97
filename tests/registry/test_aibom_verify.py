"""An AIBOM checked against a real audit ledger: the file's sha256 is the one a model.registered entry committed
to, that entry is under a tree head signed with the trusted key; a changed byte, a proof of another event and
a wrong key are each refused, saying which link broke. Then the same through the `tunegate models` verbs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from services.audit.adapters.keys import PUBLIC_KEY_FILE, Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService, open_ledger
from services.audit.domain.event_proofs import (
    EventProofDocument,
    PayloadMismatch,
    event_proof,
    verify_event_proof,
)
from services.registry.aibom.build import build_aibom
from services.registry.aibom.canonical import aibom_bytes, aibom_sha256
from services.registry.aibom.verify import verify_aibom
from shared.bus.inbox import inbox_tables
from shared.config import Settings
from shared.security.keys import public_key_pem
from shared.storage.db import Database
from tests.audit.audit_support import envelope
from tests.registry.aibom_support import facts, registered_envelope, registered_payload

V1, V2, V3 = "support-bot.v1", "support-bot.v2", "support-bot.v3"


class Registered:
    """A ledger holding two registered versions among other events, every entry signed."""

    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.docs = {vid: build_aibom(facts(version_id=vid)) for vid in (V1, V2)}
        self.payloads = {
            vid: registered_payload(vid, aibom_sha256(doc), doc["metadata"]["component"]["hashes"][0]["content"])
            for vid, doc in self.docs.items()
        }
        self.events = {vid: registered_envelope(payload) for vid, payload in self.payloads.items()}
        self.other = envelope(3)
        ledger.append([envelope(0), envelope(1), self.events[V1], envelope(2), self.other, self.events[V2]])
        ledger.sign_now()

    def proof(self, version_id: str) -> EventProofDocument:
        event = self.events[version_id]
        return event_proof(self.payloads[version_id], self.ledger.proof_for(event.event_id))

    def file(self, version_id: str) -> bytes:
        return aibom_bytes(self.docs[version_id])


@pytest.fixture
def registered(tmp_path: Path) -> Iterator[Registered]:
    settings = Settings(home=tmp_path / "home")
    db = Database(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    store = LedgerStore(db)
    store.create_schema()
    yield Registered(LedgerService(store, Ed25519Signer.load_or_create(settings.home_dir / "keys"), settings))
    db.dispose()


def test_the_registered_aibom_verifies_offline(registered: Registered) -> None:
    proof = registered.proof(V1)
    # Through JSON, as the file an auditor receives.
    restored = EventProofDocument.model_validate_json(proof.model_dump_json())
    check = verify_aibom(registered.file(V1), restored, registered.ledger.signer.public_key_pem)
    assert check.ok, check.detail
    assert check.version_id == V1 and check.event_id == registered.events[V1].event_id
    assert (check.sequence, check.tree_size) == (2, 6)
    assert check.aibom_sha256 == aibom_sha256(registered.docs[V1])
    assert "registered for model version support-bot.v1" in check.detail and "signed tree of size 6" in check.detail


def test_one_changed_byte_is_refused(registered: Registered) -> None:
    data = bytearray(registered.file(V1))
    position = data.index(b"support-bot")
    data[position] = ord("S")
    check = verify_aibom(bytes(data), registered.proof(V1), registered.ledger.signer.public_key_pem)
    assert not check.ok
    assert f"is not the AIBOM sha256 {aibom_sha256(registered.docs[V1])} registered for model version {V1}" in (
        check.detail
    )
    assert "the file was altered" in check.detail


def test_a_proof_of_another_event_is_refused(registered: Registered) -> None:
    key = registered.ledger.signer.public_key_pem
    # Another version's registration: genuine, but it registered another AIBOM.
    check = verify_aibom(registered.file(V1), registered.proof(V2), key)
    assert not check.ok and "registered for model version support-bot.v2" in check.detail
    assert "or the proof is for another version" in check.detail
    # An event that is not a registration at all.
    other = registered.other
    proof = event_proof(other.payload, registered.ledger.proof_for(other.event_id))
    check = verify_aibom(registered.file(V1), proof, key)
    assert not check.ok
    assert check.detail == (
        f"the proof is for event {other.event_id} of type job.state_changed, not a model.registered event:"
        " it says nothing about an AIBOM"
    )


def test_a_wrong_key_is_refused(registered: Registered) -> None:
    stranger = public_key_pem(Ed25519PrivateKey.generate().public_key())
    check = verify_aibom(registered.file(V1), registered.proof(V1), stranger)
    assert not check.ok
    assert check.detail.startswith("ledger proof refused: tree head of size 6 names log")
    assert "not this key's log" in check.detail


def test_an_edited_payload_cannot_vouch_for_another_file(registered: Registered) -> None:
    """Swapping the registered sha256 for a forged file's breaks the payload's link to the ledger entry."""
    forged = registered.file(V1).replace(b"support-bot", b"Support-bot")
    proof = registered.proof(V1).model_dump(mode="json")
    proof["payload"]["aibom"]["sha256"] = aibom_sha256(json.loads(forged))
    check = verify_aibom(forged, EventProofDocument.model_validate(proof), registered.ledger.signer.public_key_pem)
    assert not check.ok
    assert check.detail.startswith("ledger proof refused: the payload's sha256")
    assert f"ledger entry 2 (event {registered.events[V1].event_id}, model.registered) committed to" in (
        check.detail
    )


def test_an_event_proof_binds_only_its_own_payload(registered: Registered) -> None:
    inclusion = registered.ledger.proof_for(registered.events[V1].event_id)
    with pytest.raises(PayloadMismatch, match="is not the payload_sha256"):
        event_proof(registered.payloads[V2], inclusion)
    check = verify_event_proof(registered.proof(V1), registered.ledger.signer.public_key_pem)
    assert check.ok and "entry 2 of the signed tree of size 6" in check.detail


# ------------------------------------------------------------------------------------------- the verbs


def models_app() -> typer.Typer:
    """`tunegate` with only the AIBOM verbs in its `models` group and the `audit` verbs, as they are mounted."""
    from services.audit.entrypoints.cli import register as register_audit
    from services.registry.entrypoints.models_aibom_cli import register

    root, models = typer.Typer(), typer.Typer()

    @root.callback()
    def main() -> None:
        """tunegate"""

    register(models)
    root.add_typer(models, name="models")
    register_audit(root)
    return root


@pytest.fixture
def host(tunegate_home: Path, tmp_path: Path) -> dict[str, Any]:
    """This host: an audit ledger and a registry outbox under TUNEGATE_HOME, and the AIBOM file."""
    settings = Settings()
    ledger = open_ledger(settings)
    doc = build_aibom(facts(version_id=V3))
    payload = registered_payload(V3, aibom_sha256(doc), doc["metadata"]["component"]["hashes"][0]["content"])
    event = registered_envelope(payload)
    tables = inbox_tables("registry")
    registry_db = Database(settings.database_url_for("registry"))
    tables.metadata.create_all(registry_db.engine)
    with registry_db.transaction() as session:
        tables.stage(session, [envelope(7), event], causation_id=None)
    registry_db.dispose()
    ledger.append([envelope(7), event])
    ledger.sign_now()
    ledger.store.db.dispose()
    aibom = tmp_path / "aibom.cdx.json"
    aibom.write_bytes(aibom_bytes(doc))
    return {"aibom": aibom, "key": tunegate_home / "keys" / PUBLIC_KEY_FILE, "event_id": event.event_id}


runner = CliRunner()


def test_the_verbs_export_and_verify(host: dict[str, Any], tmp_path: Path) -> None:
    app, proof = models_app(), tmp_path / "aibom-proof.json"
    made = runner.invoke(app, ["models", "aibom-proof", V3, "--out", str(proof)])
    assert made.exit_code == 0, made.output
    assert f"event {host['event_id']} is entry 1 of the signed tree of size 2" in made.output
    args = ["models", "verify-aibom", str(host["aibom"]), "--proof", str(proof), "--public-key", str(host["key"])]
    ok = runner.invoke(app, [*args, "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.output)
    assert report["ok"] is True and report["version_id"] == V3 and report["schema_problems"] == []
    # The audit verb accepts the same document as an event proof.
    audit = runner.invoke(app, ["audit", "verify-proof", str(proof), "--public-key", str(host["key"])])
    assert audit.exit_code == 0, audit.output
    assert "the payload (sha256" in audit.output

    data = bytearray(host["aibom"].read_bytes())
    data[data.index(b'"specVersion":"1.6"') + len('"specVersion":"1.')] = ord("5")
    host["aibom"].write_bytes(bytes(data))
    bad = runner.invoke(app, [*args, "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["ok"] is False and "the file was altered" in report["detail"]
    assert report["schema_problems"] == ["$.specVersion: '1.5' is not '1.6'"]


def test_the_verbs_say_what_is_missing(host: dict[str, Any], tmp_path: Path) -> None:
    app = models_app()
    unknown = runner.invoke(app, ["models", "aibom-proof", "support-bot.v99", "--out", str(tmp_path / "p.json")])
    assert unknown.exit_code == 2
    assert "published no model.registered event for model version 'support-bot.v99'" in unknown.output
    not_a_proof = tmp_path / "not-a-proof.json"
    not_a_proof.write_text(json.dumps({"format": "tunegate.audit.inclusion-proof/v1"}))
    wrong = runner.invoke(app, ["models", "verify-aibom", str(host["aibom"]), "--proof", str(not_a_proof)])
    assert wrong.exit_code == 2 and "is not 'tunegate.audit.event-proof/v1'" in wrong.output
