"""Interoperability with an implementation tunegate did not write: Go's golang.org/x/mod/sumdb/note (the
reference signed-note code, shipped as source by Debian's golang-golang-x-mod-dev) verifies our checkpoints
with our verifier keys, parses our witness cosignature lines, and refuses a tampered checkpoint.

The verifier (tests/audit/interop/main.go) is compiled offline in GOPATH mode against the Debian source."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.adapters.keys import Ed25519Signer
from services.audit.application import LedgerService
from services.audit.domain.checkpoints import COSIGNATURE_V1, SignedNote, log_verifier, sign_note, witness_verifier
from services.audit.ledger_proofs import latest_checkpoint
from shared.security.keys import key_id_for
from tests.audit.audit_support import envelope

INTEROP_DIR = Path(__file__).parent / "interop"
GOPATH_DIRS = ("/usr/share/gocode",)  # where Debian's golang-*-dev packages put Go sources


@pytest.fixture(scope="module")
def go_verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the `go` toolchain is not installed (apt-get install golang-go golang-golang-x-mod-dev)")
    out = tmp_path_factory.mktemp("go") / "verifynote"
    gopath = os.pathsep.join([*GOPATH_DIRS, *filter(None, [os.environ.get("GOPATH")])])
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": gopath,
        "GOCACHE": str(out.parent / "cache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    build = subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=INTEROP_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, (
        "building the Go verifier failed; is golang.org/x/mod under one of "
        f"{gopath} (Debian: golang-golang-x-mod-dev)?\n{build.stderr}"
    )
    return out


def _go_open(verifier: Path, note: bytes, tmp_path: Path, *vkeys: str) -> subprocess.CompletedProcess[str]:
    note_file = tmp_path / "note.txt"
    note_file.write_bytes(note)
    return subprocess.run([str(verifier), str(note_file), *vkeys], capture_output=True, text=True, timeout=60)


def _signed_ledger(ledger: LedgerService) -> bytes:
    ledger.append([envelope(i) for i in range(21)])
    ledger.sign_now()
    return latest_checkpoint(ledger.store, ledger.signer.public_key).render()


def test_go_verifies_our_checkpoint_with_our_verifier_key(
    go_verifier: Path, ledger: LedgerService, tmp_path: Path
) -> None:
    note = _signed_ledger(ledger)
    vkey = log_verifier(ledger.signer.public_key)
    result = _go_open(go_verifier, note, tmp_path, vkey.encode())
    assert result.returncode == 0, result.stderr
    text = note[: note.index(b"\n\n") + 1].decode()
    assert result.stdout == text + f"verified {vkey.name}+{vkey.key_id.hex()}\n"
    assert text.startswith(f"tunegate.local/audit/{key_id_for(ledger.signer.public_key)}\n21\n")


def test_go_refuses_a_tampered_checkpoint_and_a_stranger_key(
    go_verifier: Path, ledger: LedgerService, tmp_path: Path
) -> None:
    note = _signed_ledger(ledger)
    vkey = log_verifier(ledger.signer.public_key).encode()
    tampered = note.replace(b"\n21\n", b"\n22\n", 1)
    result = _go_open(go_verifier, tampered, tmp_path, vkey)
    assert result.returncode == 1 and "invalid signature" in result.stderr
    stranger = log_verifier(Ed25519Signer.generate().public_key).encode()
    result = _go_open(go_verifier, note, tmp_path, stranger)
    assert result.returncode == 1 and "no verifiable signatures" in result.stderr


def test_go_parses_a_cosigned_checkpoint(go_verifier: Path, ledger: LedgerService, tmp_path: Path) -> None:
    note = SignedNote.parse(_signed_ledger(ledger))
    witness_key = Ed25519PrivateKey.generate()
    witness = witness_verifier("witness.example/w1", witness_key.public_key())
    cosigned = note.with_signature(
        sign_note(note.text, witness.name, COSIGNATURE_V1, witness_key.public_key(), witness_key.sign, 1_700_000_000)
    ).render()
    vkey = log_verifier(ledger.signer.public_key)
    result = _go_open(go_verifier, cosigned, tmp_path, vkey.encode())
    assert result.returncode == 0, result.stderr
    # sumdb/note knows only Ed25519 (type 0x01) keys: the cosignature line parses and is left unverified.
    assert f"verified {vkey.name}+{vkey.key_id.hex()}\n" in result.stdout
    assert f"unverified {witness.name}+{witness.key_id.hex()}\n" in result.stdout


def test_go_verifies_the_golden_vector(go_verifier: Path) -> None:
    vectors = Path(__file__).parent / "vectors"
    vkey = (vectors / "log.vkey").read_text().strip()
    result = subprocess.run(
        [str(go_verifier), str(vectors / "checkpoint-cosigned.txt"), vkey], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(
        "verified tunegate.local/audit/113b2b3fa053d4a9+a792dfda\nunverified witness.example/w1+e28a5f1b\n"
    )
