"""Tree heads as C2SP checkpoints in signed notes: the byte format (known answers from Go's sumdb/note tests),
verifier keys, and `tunegate audit checkpoint / verifier-key / verify --trusted-checkpoint`, which catches a
ledger cut short, rolled back or rewritten after a checkpoint was taken elsewhere."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService, open_ledger
from services.audit.domain.checkpoints import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    NoteError,
    NoteVerifier,
    SignedNote,
    log_origin,
    log_verifier,
    open_checkpoint,
    sign_note,
    verified_signatures,
)
from services.audit.ledger_proofs import latest_checkpoint
from shared.config import Settings
from shared.security.keys import public_key_raw
from shared.storage.db import Database
from tests.audit.audit_support import envelope

runner = CliRunner()

# From golang.org/x/mod/sumdb/note's own tests (an implementation tunegate did not write).
GO_SIGNER_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = GO_TEXT + (
    "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def test_signing_reproduces_go_sumdb_note_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SIGNER_SEED)
    assert seed[0] == ED25519
    private = Ed25519PrivateKey.from_private_bytes(seed[1:])
    verifier = NoteVerifier("PeterNeumann", ED25519, private.public_key())
    assert verifier.encode() == GO_VKEY
    assert NoteVerifier.parse(GO_VKEY) == verifier
    signature = sign_note(GO_TEXT, "PeterNeumann", ED25519, private.public_key(), private.sign)
    assert SignedNote(GO_TEXT, (signature,)).render() == GO_NOTE
    parsed = SignedNote.parse(GO_NOTE)
    assert [v.verifier for v in verified_signatures(parsed, [verifier])] == [verifier]


def test_verifier_keys_round_trip_for_many_keys() -> None:
    # Standard base64 key material often holds '+', the field separator: parsing must not split there.
    for _ in range(300):
        key = Ed25519PrivateKey.generate().public_key()
        for kind in (ED25519, COSIGNATURE_V1):
            verifier = NoteVerifier("log.example/a", kind, key)
            assert NoteVerifier.parse(verifier.encode()) == verifier


def test_key_id_is_the_first_four_bytes_of_the_spec_hash() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    for kind in (ED25519, COSIGNATURE_V1):
        expected = hashlib.sha256(b"w.example/1\n" + bytes([kind]) + public_key_raw(key)).digest()[:4]
        assert NoteVerifier("w.example/1", kind, key).key_id == expected


def test_checkpoint_text_round_trip_and_strict_parsing() -> None:
    checkpoint = Checkpoint("example.com/log", 20852163, bytes(range(32)))
    text = checkpoint.text()
    assert text == b"example.com/log\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert Checkpoint.parse(text) == checkpoint
    assert Checkpoint.parse(text + b"extension line\n") == checkpoint
    for bad, why in [
        (b"example.com/log\n020\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", "leading zeros"),
        (b"example.com/log\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", "not a decimal"),
        (b"example.com/log\n5\nAAEC\n", "32"),
        (b"example.com/log\n5\n", "three non-empty lines"),
        (b"example.com/log\n5\n!!!!\n", "not base64"),
    ]:
        with pytest.raises(NoteError, match=why):
            Checkpoint.parse(bad)


def test_malformed_notes_are_refused_with_a_reason() -> None:
    cases = [
        (GO_NOTE.replace(b"\n\n", b"\n"), "no blank line"),
        (GO_NOTE[:-1], "does not end in a newline"),
        (GO_NOTE.replace("\u2014".encode(), b"-"), "em dash"),
        (GO_NOTE.replace(b"problem,", b"problem,\x07"), "control character"),
        (GO_NOTE + b"\xff", "not UTF-8"),
        (GO_NOTE.replace(b"PeterNeumann x08", b"Peter+Neumann x08"), "malformed name"),
        (b"x" * 70_000, "at most"),
    ]
    for data, why in cases:
        with pytest.raises(NoteError, match=why):
            SignedNote.parse(data)


def test_known_key_with_a_bad_signature_rejects_the_note_unknown_keys_are_ignored() -> None:
    verifier = NoteVerifier.parse(GO_VKEY)
    tampered = SignedNote.parse(GO_NOTE.replace(b"cryptography", b"cryptographY"))
    with pytest.raises(NoteError, match="does not verify"):
        verified_signatures(tampered, [verifier])
    other = NoteVerifier("PeterNeumann", ED25519, Ed25519PrivateKey.generate().public_key())
    assert verified_signatures(SignedNote.parse(GO_NOTE), [other]) == []


def test_verifier_key_errors() -> None:
    for bad, why in [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3", "expected <name>"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVk", "32 key bytes"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "space"),
    ]:
        with pytest.raises(NoteError, match=why):
            NoteVerifier.parse(bad)


def test_tree_heads_are_checkpoints_signed_by_the_log(ledger: LedgerService) -> None:
    ledger.append([envelope(i) for i in range(7)])
    head = ledger.sign_now()
    note = latest_checkpoint(ledger.store, ledger.signer.public_key)
    checked = open_checkpoint(note.render(), log_verifier(ledger.signer.public_key))
    assert checked.checkpoint == Checkpoint(
        log_origin(ledger.signer.public_key), 7, bytes.fromhex(head.root_hash)
    )
    assert head.origin == log_origin(ledger.signer.public_key)
    with pytest.raises(NoteError, match="not"):
        open_checkpoint(note.render(), log_verifier(Ed25519Signer.generate().public_key))


# ---------------------------------------------------------------------------------------------- the CLI



def _fill(ledger: LedgerService, start: int, count: int, prefix: str = "job") -> None:
    ledger.append([envelope(i, subject=f"{prefix}_{i}") for i in range(start, start + count)])
    ledger.sign_now()


def _raw(home: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(home / "db" / "audit.sqlite3")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def _copy_database(source: Path, target: Path) -> None:
    """Replace target's content with source's through SQLite itself (safe while connections are open)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_checkpoint_and_verifier_key_commands(app: typer.Typer, tunegate_home: Path, tmp_path: Path) -> None:
    ledger = open_ledger(Settings())
    _fill(ledger, 0, 12)
    printed = runner.invoke(app, ["audit", "checkpoint"])
    assert printed.exit_code == 0, printed.output
    origin = log_origin(ledger.signer.public_key)
    assert printed.stdout.startswith(f"{origin}\n12\n")
    out = tmp_path / "cp.txt"
    assert runner.invoke(app, ["audit", "checkpoint", "--out", str(out)]).exit_code == 0
    assert out.read_bytes() == printed.stdout.encode()
    vkey = runner.invoke(app, ["audit", "verifier-key"]).stdout.strip()
    assert vkey == log_verifier(ledger.signer.public_key).encode()
    open_checkpoint(out.read_bytes(), NoteVerifier.parse(vkey))
    # The verifier key is accepted wherever the log's public key is.
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(vkey + "\n")
    result = runner.invoke(
        app, ["audit", "verify", "--public-key", str(vkey_file), "--trusted-checkpoint", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "extends the trusted checkpoint of size 12" in result.output


def test_no_signed_head_yet_is_a_usage_error(app: typer.Typer, tunegate_home: Path) -> None:
    ledger = open_ledger(Settings())
    ledger.append([envelope(0)])
    result = runner.invoke(app, ["audit", "checkpoint"])
    assert result.exit_code == 2 and "no signed tree head" in result.output


def test_truncation_with_tree_heads_is_caught_only_with_a_trusted_checkpoint(
    app: typer.Typer, tunegate_home: Path, tmp_path: Path
) -> None:
    ledger = open_ledger(Settings())
    _fill(ledger, 0, 300)
    _fill(ledger, 300, 300)
    trusted = tmp_path / "trusted.checkpoint"
    assert runner.invoke(app, ["audit", "checkpoint", "--out", str(trusted)]).exit_code == 0
    _fill(ledger, 600, 10)
    ledger.store.db.dispose()
    # An insider deletes the last 60 entries and every tree head that covered them.
    conn = _raw(tunegate_home)
    conn.execute("DELETE FROM audit_entries WHERE sequence >= 550")
    conn.execute("DELETE FROM audit_tree_heads WHERE tree_size > 550")
    conn.execute("DELETE FROM audit_nodes WHERE ((idx + 1) << level) > 550")
    conn.commit()
    conn.close()
    plain = runner.invoke(app, ["audit", "verify"])
    assert plain.exit_code == 0, "without a checkpoint held elsewhere the cut is invisible: " + plain.output
    result = runner.invoke(app, ["audit", "verify", "--trusted-checkpoint", str(trusted)])
    assert result.exit_code == 1, result.output
    assert "holds 550 entries but the trusted checkpoint covers 600" in result.output
    assert "cut off or the ledger was rolled back" in result.output
    as_json = runner.invoke(app, ["audit", "verify", "--trusted-checkpoint", str(trusted), "--json"])
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["trusted_checkpoint"]["checkpoint_size"] == 600


def test_rollback_to_an_old_copy_is_caught(app: typer.Typer, tunegate_home: Path, tmp_path: Path) -> None:
    ledger = open_ledger(Settings())
    _fill(ledger, 0, 40)
    backup = tmp_path / "backup.sqlite3"
    _copy_database(tunegate_home / "db" / "audit.sqlite3", backup)
    _fill(ledger, 40, 25)
    trusted = tmp_path / "trusted.checkpoint"
    assert runner.invoke(app, ["audit", "checkpoint", "--out", str(trusted)]).exit_code == 0
    _copy_database(backup, tunegate_home / "db" / "audit.sqlite3")
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    result = runner.invoke(app, ["audit", "verify", "--trusted-checkpoint", str(trusted)])
    assert result.exit_code == 1 and "holds 40 entries but the trusted checkpoint covers 65" in result.output


def test_rewritten_history_signed_with_the_stolen_key_is_caught(
    app: typer.Typer, tunegate_home: Path, tmp_path: Path, settings: Settings
) -> None:
    ledger = open_ledger(Settings())
    _fill(ledger, 0, 50)
    trusted = tmp_path / "trusted.checkpoint"
    assert runner.invoke(app, ["audit", "checkpoint", "--out", str(trusted)]).exit_code == 0
    # Someone with the log's key builds a different, internally valid history at least as long.
    forged_db = Database(f"sqlite:///{tmp_path / 'forged.sqlite3'}")
    forged = LedgerService(LedgerStore(forged_db), ledger.signer, settings)
    forged.store.create_schema()
    _fill(forged, 0, 20)
    _fill(forged, 20, 40, prefix="forged")
    forged_db.dispose()
    _copy_database(tmp_path / "forged.sqlite3", tunegate_home / "db" / "audit.sqlite3")
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    result = runner.invoke(app, ["audit", "verify", "--trusted-checkpoint", str(trusted)])
    assert result.exit_code == 1 and "history was rewritten or forked" in result.output


def test_a_checkpoint_that_does_not_verify_fails_clearly(app: typer.Typer, tunegate_home: Path, tmp_path: Path) -> None:
    ledger = open_ledger(Settings())
    _fill(ledger, 0, 5)
    checkpoint = tmp_path / "cp"
    assert runner.invoke(app, ["audit", "checkpoint", "--out", str(checkpoint)]).exit_code == 0
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data.replace(b"\n5\n", b"\n6\n", 1))
    result = runner.invoke(app, ["audit", "verify", "--trusted-checkpoint", str(checkpoint)])
    assert result.exit_code == 1 and "does not verify" in result.output
    stranger = Ed25519Signer.generate()
    note = SignedNote(data[: data.index(b"\n\n") + 1], ())
    signed = note.with_signature(
        sign_note(note.text, log_origin(stranger.public_key), ED25519, stranger.public_key, stranger.sign)
    )
    checkpoint.write_bytes(signed.render())
    result = runner.invoke(app, ["audit", "verify", "--trusted-checkpoint", str(checkpoint)])
    assert result.exit_code == 1 and "no signature by the log key" in result.output
    missing = runner.invoke(app, ["audit", "verify", "--trusted-checkpoint", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not found" in missing.output
