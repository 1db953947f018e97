"""`tunegate audit witness`: a second key, in its own state directory, that cosigns a checkpoint only when it
extends the last one it cosigned; `audit verify --require-cosignatures K` then needs K witnesses. Rollback,
forks and truncation are each refused or caught."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService, open_ledger
from services.audit.domain.checkpoints import Checkpoint, NoteError, SignedNote, log_verifier
from services.audit.domain.witness import WitnessRefusal, check_advance
from services.audit.ledger_proofs import build_consistency_proof, latest_checkpoint
from shared.config import Settings
from shared.storage.db import Database
from tests.audit.audit_support import envelope

runner = CliRunner()



@pytest.fixture
def ledger(tunegate_home: Path) -> LedgerService:
    return open_ledger(Settings())


def _fill(ledger: LedgerService, start: int, count: int, prefix: str = "job") -> None:
    ledger.append([envelope(i, subject=f"{prefix}_{i}") for i in range(start, start + count)])
    ledger.sign_now()


def _invoke(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _init(app: typer.Typer, state: Path, name: str) -> str:
    code, log_key = _invoke(app, "audit", "verifier-key")
    assert code == 0, log_key
    code, out = _invoke(app, "audit", "witness", "init", "--state-dir", str(state), "--name", name,
                        "--log-key", log_key.strip())  # fmt: skip
    assert code == 0, out
    return out.strip()


def _cosign(app: typer.Typer, state: Path, *args: str) -> tuple[int, str]:
    return _invoke(app, "audit", "witness", "cosign", "--state-dir", str(state), *args)


def test_init_creates_a_private_state_with_its_own_key(
    app: typer.Typer, ledger: LedgerService, tmp_path: Path, tunegate_home: Path
) -> None:
    state = tmp_path / "witness-a"
    vkey = _init(app, state, "witness.example/a")
    assert vkey.startswith("witness.example/a+")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("witness_ed25519.key", "witness.json"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert _invoke(app, "audit", "witness", "verifier-key", "--state-dir", str(state)) == (0, vkey + "\n")
    # The same state directory cannot be re-pointed at another name.
    code, out = _invoke(app, "audit", "witness", "init", "--state-dir", str(state), "--name", "other.example/b",
                        "--log-key", "x+00000000+AA==")  # fmt: skip
    assert code == 2
    code, out = _cosign(app, tmp_path / "never-initialised")
    assert code == 2 and "witness init" in out
    # The log's key may also be given as its public key file, in any form.
    other = tmp_path / "witness-b"
    log_pub = tunegate_home / "keys" / "audit_ed25519.pub"
    code, out = _invoke(app, "audit", "witness", "init", "--state-dir", str(other), "--name", "witness.example/b",
                        "--log-key", str(log_pub))  # fmt: skip
    assert code == 0, out
    assert json.loads((other / "witness.json").read_text())["log_verifier_key"] == log_verifier(
        ledger.signer.public_key
    ).encode()


def test_cosigns_forward_refuses_rollback_and_a_missing_proof(
    app: typer.Typer, ledger: LedgerService, tmp_path: Path
) -> None:
    state = tmp_path / "w"
    _init(app, state, "witness.example/a")
    _fill(ledger, 0, 30)
    old = tmp_path / "cp30"
    assert _invoke(app, "audit", "checkpoint", "--out", str(old))[0] == 0
    code, out = _cosign(app, state, "--out", str(tmp_path / "c30"))
    assert code == 0 and "size 30 (first checkpoint)" in out
    _fill(ledger, 30, 20)
    code, out = _cosign(app, state, "--out", str(tmp_path / "c50"))
    assert code == 0 and "size 50 (extends size 30)" in out
    assert (state / "latest.checkpoint").read_bytes() == (tmp_path / "c50").read_bytes()

    code, out = _cosign(app, state, "--checkpoint", str(old))
    assert code == 1 and "rollback: checkpoint size 30 is smaller than the size 50 already cosigned" in out

    _fill(ledger, 50, 5)
    newer = tmp_path / "cp55"
    assert _invoke(app, "audit", "checkpoint", "--out", str(newer))[0] == 0
    code, out = _cosign(app, state, "--checkpoint", str(newer))
    assert code == 1 and "consistency proof from size 50 to 55 is needed" in out
    proof = tmp_path / "p"
    assert _invoke(app, "audit", "consistency", "50", "55", "--out", str(proof))[0] == 0
    code, out = _cosign(app, state, "--checkpoint", str(newer), "--proof", str(proof), "--out", str(tmp_path / "c55"))
    assert code == 0, out


def test_refuses_a_fork_signed_with_the_stolen_log_key(
    app: typer.Typer, ledger: LedgerService, tmp_path: Path, settings: Settings
) -> None:
    state = tmp_path / "w"
    _init(app, state, "witness.example/a")
    _fill(ledger, 0, 40)
    assert _cosign(app, state, "--out", str(tmp_path / "c40"))[0] == 0
    forked_db = Database(f"sqlite:///{tmp_path / 'forked.sqlite3'}")
    forked = LedgerService(LedgerStore(forked_db), ledger.signer, settings)
    forked.store.create_schema()
    _fill(forked, 0, 39)
    _fill(forked, 39, 1, prefix="forged")  # the same size, a different last entry
    fork_same_size = tmp_path / "fork40"
    fork_same_size.write_bytes(latest_checkpoint(forked.store, ledger.signer.public_key).render())
    code, out = _cosign(app, state, "--checkpoint", str(fork_same_size))
    assert code == 1 and "fork: size 40 was cosigned with root" in out

    _fill(forked, 40, 20, prefix="forged")
    fork_longer = tmp_path / "fork60"
    fork_longer.write_bytes(latest_checkpoint(forked.store, ledger.signer.public_key).render())
    forged_proof = tmp_path / "forged-proof"
    document = build_consistency_proof(forked.store, 40, 60, ledger.signer.public_key_pem)
    forged_proof.write_text(document.model_dump_json())
    code, out = _cosign(app, state, "--checkpoint", str(fork_longer), "--proof", str(forged_proof))
    assert code == 1 and "fork" in out
    forked_db.dispose()
    # The witness still holds the honest size-40 checkpoint.
    latest = SignedNote.parse((state / "latest.checkpoint").read_bytes())
    assert Checkpoint.parse(latest.text).tree_size == 40


def test_refuses_a_checkpoint_not_signed_by_its_log(app: typer.Typer, ledger: LedgerService, tmp_path: Path) -> None:
    state = tmp_path / "w"
    _init(app, state, "witness.example/a")
    _fill(ledger, 0, 3)
    checkpoint = tmp_path / "cp"
    assert _invoke(app, "audit", "checkpoint", "--out", str(checkpoint))[0] == 0
    checkpoint.write_bytes(checkpoint.read_bytes().replace(b"\n3\n", b"\n4\n", 1))
    code, out = _cosign(app, state, "--checkpoint", str(checkpoint))
    assert code == 1 and "refused" in out and "does not verify" in out
    assert not (state / "latest.checkpoint").exists()


def test_k_of_n_cosignatures(app: typer.Typer, ledger: LedgerService, tmp_path: Path) -> None:
    vkeys = {name: _init(app, tmp_path / name, f"witness.example/{name}") for name in ("a", "b", "c")}
    _fill(ledger, 0, 25)
    assert _cosign(app, tmp_path / "a", "--out", str(tmp_path / "by-a"))[0] == 0
    cosigned = tmp_path / "by-ab"
    assert _cosign(app, tmp_path / "b", "--checkpoint", str(tmp_path / "by-a"), "--out", str(cosigned))[0] == 0
    assert len(SignedNote.parse(cosigned.read_bytes()).signatures) == 3

    def verify(*extra: str) -> tuple[int, str]:
        witness_args = [arg for vkey in vkeys.values() for arg in ("--witness-key", vkey)]
        return _invoke(app, "audit", "verify", "--trusted-checkpoint", str(cosigned), *witness_args, *extra)

    code, out = verify("--require-cosignatures", "2")
    assert code == 0 and "cosigned by witness.example/a, witness.example/b" in out
    code, out = verify("--require-cosignatures", "3")
    assert code == 1 and "2 valid cosignature(s)" in out and "3 required" in out
    # A witness that is not given does not count, whatever it signed.
    only_c = ["--witness-key", vkeys["c"], "--witness-key", vkeys["b"]]
    code, out = _invoke(app, "audit", "verify", "--trusted-checkpoint", str(cosigned), *only_c,
                        "--require-cosignatures", "2")  # fmt: skip
    assert code == 1 and "1 valid cosignature(s)" in out
    # A witness key given as a file works too.
    key_file = tmp_path / "a.vkey"
    key_file.write_text(vkeys["a"] + "\n")
    code, out = _invoke(app, "audit", "verify", "--trusted-checkpoint", str(cosigned), "--witness-key", str(key_file),
                        "--require-cosignatures", "1")  # fmt: skip
    assert code == 0, out
    # An altered cosignature by a known witness rejects the checkpoint.
    lines = cosigned.read_text().splitlines(keepends=True)
    name, blob = lines[-1].rsplit(" ", 1)
    flipped = blob[:20] + ("A" if blob[20] != "A" else "B") + blob[21:]
    bad = tmp_path / "bad"
    bad.write_text("".join(lines[:-1]) + f"{name} {flipped}")
    code, out = _invoke(app, "audit", "verify", "--trusted-checkpoint", str(bad), "--witness-key", vkeys["b"])
    assert code == 1 and "does not verify" in out
    assert _invoke(app, "audit", "verify", "--require-cosignatures", "1", "--witness-key", vkeys["a"])[0] == 2
    code, out = verify("--require-cosignatures", "4")
    assert code == 2 and "only 3 --witness-key" in out


def test_witnessed_checkpoint_catches_truncation(
    app: typer.Typer, ledger: LedgerService, tmp_path: Path, tunegate_home: Path
) -> None:
    vkey = _init(app, tmp_path / "w", "witness.example/a")
    _fill(ledger, 0, 80)
    assert _cosign(app, tmp_path / "w", "--out", str(tmp_path / "cosigned"))[0] == 0
    conn = sqlite3.connect(tunegate_home / "db" / "audit.sqlite3")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DELETE FROM audit_entries WHERE sequence >= 70")
    conn.execute("DELETE FROM audit_tree_heads")
    conn.commit()
    conn.close()
    assert _invoke(app, "audit", "verify")[0] == 0
    code, out = _invoke(app, "audit", "verify", "--trusted-checkpoint", str(tmp_path / "cosigned"),
                        "--witness-key", vkey, "--require-cosignatures", "1")  # fmt: skip
    assert code == 1 and "holds 70 entries but the trusted checkpoint covers 80" in out


def test_check_advance_rules() -> None:
    root = bytes(32)
    last = Checkpoint("log.example/x", 5, root)
    check_advance(None, last, None)
    check_advance(last, last, None)
    with pytest.raises(WitnessRefusal, match="follows"):
        check_advance(last, Checkpoint("log.example/y", 6, root), None)
    with pytest.raises(NoteError):
        Checkpoint("", 1, root)
