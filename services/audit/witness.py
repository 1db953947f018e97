"""The witness: cosigns a log's checkpoints with its own key, only when each extends the last one it cosigned.

Run by `tunegate audit witness ...` on another host or in another trust domain than the ledger, so that
cutting the ledger short or forking it needs the witness's key as well as the log's."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.adapters.witness_state import WitnessConfig, WitnessState
from services.audit.domain.checkpoints import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    NoteError,
    NoteVerifier,
    SignedNote,
    is_valid_key_name,
    open_checkpoint,
    sign_note,
    witness_verifier,
)
from services.audit.domain.proofs import ConsistencyProofDocument
from services.audit.domain.witness import check_advance


@dataclass(frozen=True)
class Cosigned:
    note: SignedNote
    checkpoint: Checkpoint
    previous_size: int | None


class Witness:
    def __init__(self, state: WitnessState) -> None:
        self.state = state

    @classmethod
    def initialise(cls, state: WitnessState, name: str, log_verifier_key: str) -> Witness:
        if not is_valid_key_name(name):
            raise NoteError(f"witness name {name!r} is empty or holds a space, '+' or a control character")
        log = NoteVerifier.parse(log_verifier_key)
        if log.signature_type != ED25519:
            raise NoteError(f"{log.name} is not a log verifier key (type 0x01)")
        state.initialise(WitnessConfig(name=name, log_verifier_key=log.encode()))
        return cls(state)

    def verifier(self) -> NoteVerifier:
        config = self.state.config()
        public: Ed25519PublicKey = self.state.private_key().public_key()
        return witness_verifier(config.name, public)

    def log(self) -> NoteVerifier:
        return NoteVerifier.parse(self.state.config().log_verifier_key)

    def last_cosigned(self) -> Checkpoint | None:
        stored = self.state.latest()
        if stored is None:
            return None
        return Checkpoint.parse(SignedNote.parse(stored).text)

    def cosign(self, note: bytes, proof: ConsistencyProofDocument | None, now: float | None = None) -> Cosigned:
        """Check the log's signature and the advance from the last cosigned checkpoint, then cosign, record
        and return the note with the cosignature added. Raises NoteError (not the log's, malformed) or
        domain.witness.WitnessRefusal (rollback, fork, missing proof)."""
        with self.state.locked():
            config = self.state.config()
            key = self.state.private_key()
            checked = open_checkpoint(note, NoteVerifier.parse(config.log_verifier_key))
            last = self.last_cosigned()
            check_advance(last, checked.checkpoint, proof)
            timestamp = int(time.time() if now is None else now)
            signature = sign_note(
                checked.note.text, config.name, COSIGNATURE_V1, key.public_key(), key.sign, timestamp=timestamp
            )
            cosigned = checked.note.with_signature(signature)
            self.state.store_latest(cosigned.render())
        return Cosigned(cosigned, checked.checkpoint, last.tree_size if last else None)

