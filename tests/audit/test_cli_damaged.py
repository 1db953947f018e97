"""`tunegate audit ...` against a tampered or damaged ledger, hostile proof documents and bad arguments: every
case ends in a clear message and the documented exit code, never a traceback, and nothing unverified is OK.

The ledgers are damaged the way an attacker with file access would: the append-only triggers dropped, then
rows altered, deleted or the database file replaced (as /tmp/probe-2/ledger_tamper.py did)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from click.testing import Result
from pydantic import ValidationError
from typer.testing import CliRunner

from services.audit.adapters.keys import Ed25519Signer
from services.audit.application import LedgerService
from services.audit.domain.proofs import ConsistencyProofDocument, InclusionProofDocument
from shared.merkle import node_hash

runner = CliRunner()


@pytest.fixture
def live(live: tuple[LedgerService, list[str]]) -> tuple[LedgerService, list[str]]:
    """conftest's ledger, closed: the file is altered behind the service's back, as an attacker would."""
    live[0].store.db.dispose()
    return live


def _db(home: Path) -> Path:
    return home / "db" / "audit.sqlite3"


def _tamper(home: Path, *statements: str) -> None:
    conn = sqlite3.connect(_db(home))
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _run(app: typer.Typer, *args: str) -> Result:
    result = runner.invoke(app, list(args))
    # A traceback would be an exception other than the SystemExit typer.Exit and usage errors end in.
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.output, result.output
    return result


def _one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    text = " ".join(result.output.split())  # rich wraps long lines
    assert text.startswith("error: "), result.output
    for needle in needles:
        assert needle in text, (needle, result.output)


def _verify_fails(app: typer.Typer, *needles: str) -> None:
    result = _run(app, "audit", "verify")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert text.startswith("FAILED "), result.output
    for needle in needles:
        assert needle in text, (needle, result.output)


# ------------------------------------------------------------------------------------------- damaged rows


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("UPDATE audit_tree_heads SET root_hash = 'xyz'", "the tree head row of size 30 is malformed: root_hash"),
        ("UPDATE audit_tree_heads SET tree_size = -5", "the tree head row of size -5 is malformed: tree_size"),
    ],
)
def test_a_malformed_tree_head_row_fails_verify_and_every_verb(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path, statement: str, what: str
) -> None:
    _, ids = live
    _tamper(tunegate_home, statement)
    _verify_fails(app, "malformed_row", what)
    report = json.loads(_run(app, "audit", "verify", "--json").output)
    assert (report["ok"], report["problem"]) == (False, "malformed_row") and what in report["detail"]
    for verb in (["proof", ids[5]], ["consistency", "3", "30"], ["checkpoint"]):
        _one_line_error(_run(app, "audit", *verb), 1, "audit ledger at sqlite:///", "is damaged", what)
    assert _run(app, "audit", "tail", "-n", "3").exit_code == 0  # tail reads no tree head


def test_an_entry_field_stored_as_a_blob_is_a_malformed_entry(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    _tamper(tunegate_home, "UPDATE audit_entries SET actor = X'FFFE00' WHERE sequence = 3")
    _verify_fails(app, "first bad sequence 3: malformed_entry", "entry 3: actor is bytes (expected text)")
    _one_line_error(_run(app, "audit", "tail", "-n", "50"), 1, "entry 3 is malformed: actor")


def test_a_malformed_entry_hash_fails_tail_clearly(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    _tamper(tunegate_home, "UPDATE audit_entries SET entry_hash = 'zz' WHERE sequence = 3")
    _one_line_error(_run(app, "audit", "tail", "-n", "50"), 1, "entry 3 is malformed: entry_hash", "'zz'")
    _verify_fails(app, "first bad sequence 3: entry_hash_mismatch")


def test_a_deleted_row_fails_proof_and_consistency_clearly(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    _, ids = live
    _tamper(tunegate_home, "DELETE FROM audit_entries WHERE sequence = 10")
    _verify_fails(app, "first bad sequence 10: sequence_gap")
    _one_line_error(_run(app, "audit", "proof", ids[5]), 1, "leaves 8..15 incomplete (7 of 8 rows): entries removed")
    _one_line_error(_run(app, "audit", "consistency", "3", "30"), 1, "incomplete", "entries removed")


def test_a_short_stored_leaf_fails_proof_clearly(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    _, ids = live
    _tamper(tunegate_home, "UPDATE audit_entries SET leaf_hash = X'00' WHERE sequence = 3")
    _one_line_error(_run(app, "audit", "proof", ids[5]), 1, "the stored Merkle leaf of entry 3 is 1 bytes, not 32")


def test_a_head_past_the_end_fails_proof_and_is_never_exported_as_a_checkpoint(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    _, ids = live
    _tamper(tunegate_home, "UPDATE audit_tree_heads SET tree_size = 9223372036854775807")
    _verify_fails(app, "entries_missing")
    _one_line_error(
        _run(app, "audit", "proof", ids[5]), 1, "covers 9223372036854775807 entries but the ledger holds 40"
    )
    checkpoint = _run(app, "audit", "checkpoint")
    _one_line_error(checkpoint, 1, "the latest signed tree head does not verify", "not exported")
    assert "9223372036854775807\n" not in checkpoint.output.replace("error:", "")


def test_a_checkpoint_whose_root_the_stored_tree_does_not_give_is_refused(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path, tmp_path: Path
) -> None:
    _, ids = live
    # A well-formed but different leaf: the head's signature still verifies, its root no longer matches.
    _tamper(tunegate_home, f"UPDATE audit_entries SET leaf_hash = X'{'ab' * 32}' WHERE sequence = 3")
    out = tmp_path / "cp.txt"
    _one_line_error(
        _run(app, "audit", "checkpoint", "--out", str(out)), 1, "signs root", "the stored tree gives", "not exported"
    )
    assert not out.exists()
    # The proof for a neighbour walks past the altered leaf: refused, not handed out.
    proof = _run(app, "audit", "proof", ids[2], "--out", str(tmp_path / "p.json"))
    assert proof.exit_code == 1 and "FAILED the ledger gives a proof that does not verify" in proof.output
    assert not (tmp_path / "p.json").exists()


def test_a_checkpoint_is_not_exported_under_another_logs_key(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    (tunegate_home / "keys" / "audit_ed25519.pub").write_text(Ed25519Signer.generate().public_key_pem)
    _one_line_error(_run(app, "audit", "checkpoint"), 2, "not for the log of the key given", "not exported")


def test_a_dropped_table_fails_verify(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tunegate_home: Path
) -> None:
    _tamper(tunegate_home, "DROP TABLE audit_nodes")
    _verify_fails(app, "ledger_unreadable", "no such table: audit_nodes")


def _garbage(db: Path) -> None:
    db.write_bytes(b"not a database" * 100)


def _truncated(db: Path) -> None:
    with db.open("r+b") as handle:
        handle.truncate(8192)


def _directory(db: Path) -> None:
    db.unlink()
    db.mkdir()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_garbage, "file is not a database"),
        (_truncated, "database disk image is malformed"),
        (_directory, "unable to open database file"),
    ],
)
def test_an_unreadable_database_fails_every_verb(
    app: typer.Typer,
    live: tuple[LedgerService, list[str]],
    tunegate_home: Path,
    damage: Callable[[Path], None],
    reason: str,
) -> None:
    _, ids = live
    for sidecar in ("-wal", "-shm"):  # a checkpointed WAL leaves these; the attacker replaces the main file
        Path(f"{_db(tunegate_home)}{sidecar}").unlink(missing_ok=True)
    damage(_db(tunegate_home))
    _verify_fails(app, "ledger_unreadable", "cannot read the audit ledger at sqlite:///", reason)
    report = json.loads(_run(app, "audit", "verify", "--json").output)
    assert (report["ok"], report["problem"]) == (False, "ledger_unreadable")
    for verb in (["proof", ids[5]], ["consistency", "3", "30"], ["checkpoint"], ["tail"]):
        _one_line_error(_run(app, "audit", *verb), 1, "cannot read the audit ledger", reason)


# ------------------------------------------------------------------------------------ consistency proofs


def _signed_at_40(live: tuple[LedgerService, list[str]], app: typer.Typer, tmp_path: Path) -> dict[str, object]:
    ledger, _ = live
    ledger.sign_now()
    ledger.store.db.dispose()
    out = tmp_path / "c.json"
    assert _run(app, "audit", "consistency", "30", "40", "--out", str(out)).exit_code == 0
    document: dict[str, object] = json.loads(out.read_text())
    return document


def _verify_proof(app: typer.Typer, tmp_path: Path, document: object) -> Result:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    return _run(app, "audit", "verify-proof", str(path))


def test_a_consistency_proof_no_signed_head_binds_is_not_verified(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path
) -> None:
    # Made-up roots with a valid RFC 9162 path between them (the forgery the hostile tester used).
    old_root, sibling = "11" * 32, "22" * 32
    new_root = node_hash(bytes.fromhex(old_root), bytes.fromhex(sibling)).hex()
    forged = {
        "format": "tunegate.audit.consistency-proof/v1", "old_size": 1, "new_size": 2, "old_root": old_root,
        "new_root": new_root, "consistency_path": [sibling], "public_key_pem": "x",
    }  # fmt: skip
    result = _verify_proof(app, tmp_path, forged)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert text.startswith("FAILED no signed head binds these roots") and "nothing was verified" in text
    equal = forged | {"old_size": 5, "new_size": 5, "new_root": old_root, "consistency_path": []}
    assert _verify_proof(app, tmp_path, equal).exit_code == 1


def test_a_consistency_proof_with_only_the_old_head_is_not_verified(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path
) -> None:
    genuine = _signed_at_40(live, app, tmp_path)
    assert _verify_proof(app, tmp_path, genuine).exit_code == 0
    # Anyone holding the signed old tree can make up a larger one extending it: without the new head, nothing
    # says the log ever had that tree.
    result = _verify_proof(app, tmp_path, genuine | {"new_head": None})
    assert result.exit_code == 1
    assert "no signed head of size 40 binds the new root" in " ".join(result.output.split())


def test_a_consistency_proof_from_size_0_needs_the_empty_root(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path
) -> None:
    _signed_at_40(live, app, tmp_path)
    out = tmp_path / "zero.json"
    assert _run(app, "audit", "consistency", "0", "40", "--out", str(out)).exit_code == 0
    document = json.loads(out.read_text())
    assert _verify_proof(app, tmp_path, document).exit_code == 0
    result = _verify_proof(app, tmp_path, document | {"old_root": "cd" * 32})
    assert result.exit_code == 1 and "is not the empty tree's root" in " ".join(result.output.split())


# ------------------------------------------------------------------------------------- strict documents


@pytest.mark.parametrize("value", ["30", 30.0, True])
def test_proof_documents_refuse_wrong_types(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path, value: object
) -> None:
    _, ids = live
    out = tmp_path / "proof.json"
    assert _run(app, "audit", "proof", ids[12], "--out", str(out)).exit_code == 0
    document = json.loads(out.read_text())
    for mutate in (
        lambda d: d.__setitem__("tree_size", value),
        lambda d: d["tree_head"].__setitem__("tree_size", value),
        lambda d: d["entry"].__setitem__("sequence", 12 if value is True else value),
    ):
        altered = json.loads(json.dumps(document))
        mutate(altered)
        if altered == document:
            continue
        result = _verify_proof(app, tmp_path, altered)
        assert result.exit_code == 1, result.output
        text = " ".join(result.output.split())
        assert text.startswith("FAILED malformed proof document:") and "valid integer" in text, text
        assert f"(got {value!r})" in text
    with pytest.raises(ValidationError):
        InclusionProofDocument.model_validate(document | {"tree_size": value})


def test_consistency_documents_refuse_string_sizes(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path
) -> None:
    genuine = _signed_at_40(live, app, tmp_path)
    with pytest.raises(ValidationError, match="old_size"):
        ConsistencyProofDocument.model_validate(genuine | {"old_size": "30"})
    result = _verify_proof(app, tmp_path, genuine | {"new_size": 40.0})
    assert result.exit_code == 1 and "malformed proof document: new_size" in " ".join(result.output.split())


# ------------------------------------------------------------------------------------------- arguments


def test_tail_refuses_a_count_past_its_maximum(app: typer.Typer, live: tuple[LedgerService, list[str]]) -> None:
    result = _run(app, "audit", "tail", "-n", "99999999999999999999")
    assert result.exit_code == 2
    assert "'-n' / '--lines'" in result.output and "less than or equal to" in result.output  # rich boxes it
    assert "100000" in result.output


def test_an_inline_witness_key_too_long_for_a_file_name_is_parsed_as_a_key(
    app: typer.Typer, live: tuple[LedgerService, list[str]]
) -> None:
    result = _run(app, "audit", "verify", "--witness-key", "foo+" + "A" * 5000)
    assert result.exit_code == 2 and "--witness-key" in result.output


def test_unwritable_out_paths_are_usage_errors(
    app: typer.Typer, live: tuple[LedgerService, list[str]], tmp_path: Path
) -> None:
    ledger, ids = live
    missing_dir = tmp_path / "no-such-dir" / "x.json"
    _one_line_error(_run(app, "audit", "proof", ids[3], "--out", str(missing_dir)), 2, f"cannot write {missing_dir}")
    a_directory = tmp_path / "a-directory"
    a_directory.mkdir()
    _one_line_error(_run(app, "audit", "proof", ids[3], "--out", str(a_directory)), 2, "Is a directory")
    ledger.sign_now()
    ledger.store.db.dispose()
    _one_line_error(_run(app, "audit", "consistency", "3", "40", "--out", str(a_directory)), 2, "Is a directory")
    shutil.rmtree(a_directory)
