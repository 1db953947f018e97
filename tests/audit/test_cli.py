"""`tunegate audit ...` over a real ledger under an isolated TUNEGATE_HOME."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from services.audit.adapters.keys import Ed25519Signer
from services.audit.application import LedgerService

runner = CliRunner()


def test_verify_ok_and_json(app: typer.Typer, live: tuple[LedgerService, list[str]]) -> None:
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "40 entries and 1 signed tree heads verified" in result.output
    assert "10 entries not yet signed" in result.output
    report = json.loads(runner.invoke(app, ["audit", "verify", "--json"]).output)
    assert report["ok"] is True and report["entries_checked"] == 40 and report["signed_size"] == 30


def test_verify_names_the_first_bad_sequence(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    conn = sqlite3.connect(tunegate_home / "db" / "audit.sqlite3")
    conn.execute("DROP TRIGGER audit_entries_no_update")
    conn.execute("UPDATE audit_entries SET subject = 'job_forged' WHERE sequence = 17")
    conn.commit()
    conn.close()
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "first bad sequence 17" in result.output and "entry_hash_mismatch" in result.output
    report = json.loads(runner.invoke(app, ["audit", "verify", "--json"]).output)
    assert (report["first_bad_sequence"], report["problem"]) == (17, "entry_hash_mismatch")


def test_proof_export_and_offline_verification(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path, tunegate_home: Path
) -> None:
    _, ids = live
    proof_file = tmp_path / "proof.json"
    result = runner.invoke(app, ["audit", "proof", ids[12], "--out", str(proof_file)])
    assert result.exit_code == 0, result.output
    assert "entry 12 of the signed tree of size 30" in result.output
    public_key = tunegate_home / "keys" / "audit_ed25519.pub"
    ok = runner.invoke(app, ["audit", "verify-proof", str(proof_file), "--public-key", str(public_key)])
    assert ok.exit_code == 0, ok.output
    assert "entry 12" in ok.output

    document = json.loads(proof_file.read_text())
    document["entry"]["actor"] = "someone-else@example.com"
    mutated = tmp_path / "mutated.json"
    mutated.write_text(json.dumps(document))
    bad = runner.invoke(app, ["audit", "verify-proof", str(mutated), "--public-key", str(public_key)])
    assert bad.exit_code == 1 and "entry_hash does not match" in bad.output

    document = json.loads(proof_file.read_text())
    document["audit_path"][0] = "f" * 64
    mutated.write_text(json.dumps(document))
    assert runner.invoke(app, ["audit", "verify-proof", str(mutated), "--public-key", str(public_key)]).exit_code == 1

    other = tmp_path / "other.pub"
    other.write_text(Ed25519Signer.generate().public_key_pem)
    wrong_key = runner.invoke(app, ["audit", "verify-proof", str(proof_file), "--public-key", str(other)])
    assert wrong_key.exit_code == 1 and "not this key's log" in wrong_key.output

    json_out = runner.invoke(app, ["audit", "proof", ids[0], "--json"])
    assert json.loads(json_out.output)["leaf_index"] == 0


def test_usage_errors_exit_2(app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path) -> None:
    _, ids = live
    unknown = runner.invoke(app, ["audit", "proof", "no-such-event"])
    assert unknown.exit_code == 2 and "not in the audit ledger" in unknown.output
    unsigned = runner.invoke(app, ["audit", "proof", ids[35]])
    assert unsigned.exit_code == 2 and "not yet covered by a signed tree head" in unsigned.output
    assert runner.invoke(app, ["audit", "consistency", "30", "99"]).exit_code == 2
    assert runner.invoke(app, ["audit", "verify-proof", str(tmp_path / "missing.json")]).exit_code == 2
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert runner.invoke(app, ["audit", "verify-proof", str(garbage)]).exit_code == 2


def test_missing_ledger_is_a_usage_error(app: typer.Typer, tunegate_home: Path) -> None:
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 2 and "no audit ledger" in result.output


def test_consistency_and_tail(app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path) -> None:
    ledger, ids = live
    # Size 40 is not signed yet: a proof to it would rest on a root nobody signed, so it is refused.
    unsigned = runner.invoke(app, ["audit", "consistency", "30", "40"])
    assert unsigned.exit_code == 2 and "signed no tree head of size 40" in unsigned.output
    assert "latest signed sizes: 30" in unsigned.output
    ledger.sign_now()
    result = runner.invoke(app, ["audit", "consistency", "30", "40", "--out", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    assert "tree 30 is a prefix of tree 40" in result.output and "signed heads checked: old, new" in result.output
    document = json.loads((tmp_path / "c.json").read_text())
    assert document["old_head"]["tree_size"] == 30 and document["new_head"]["tree_size"] == 40
    assert runner.invoke(app, ["audit", "verify-proof", str(tmp_path / "c.json")]).exit_code == 0
    # No signed head of size 7: the signed head of size 40 binds its root through the path.
    as_json = json.loads(runner.invoke(app, ["audit", "consistency", "7", "40", "--json"]).output)
    assert as_json["check"]["ok"] is True and as_json["proof"]["old_head"] is None
    tail = json.loads(runner.invoke(app, ["audit", "tail", "-n", "3", "--json"]).output)
    assert [row["event_id"] for row in tail] == ids[-3:]
    table = runner.invoke(app, ["audit", "tail", "-n", "2"])
    assert table.exit_code == 0 and "seq" in table.output and "38" in table.output


def test_verify_proof_without_a_trusted_key_refuses(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ids = live
    proof_file = tmp_path / "proof.json"
    assert runner.invoke(app, ["audit", "proof", ids[3], "--out", str(proof_file)]).exit_code == 0
    # An auditor's machine: no audit log key of its own.
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "auditor"))
    result = runner.invoke(app, ["audit", "verify-proof", str(proof_file)])
    assert result.exit_code == 2
    assert "no trusted key" in result.output and "never trusted" in result.output
    # A proof whose embedded key signed its own head is refused against the key the auditor trusts.
    document = json.loads(proof_file.read_text())
    stranger = Ed25519Signer.generate()
    document["public_key_pem"] = stranger.public_key_pem
    proof_file.write_text(json.dumps(document))
    trusted_key = tmp_path / "log.pub"
    trusted_key.write_text(live[0].signer.public_key_pem)
    ok = runner.invoke(app, ["audit", "verify-proof", str(proof_file), "--public-key", str(trusted_key)])
    assert ok.exit_code == 0, ok.output  # the embedded key is ignored, the trusted one verifies
    assert f"--public-key {trusted_key}" in ok.output
