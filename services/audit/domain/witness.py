"""A witness's one rule: cosign a log's checkpoint only if it extends the last checkpoint it cosigned for that
log. A smaller tree is a rollback, a different root for the same size or a failed consistency proof is a
fork; either way the witness refuses, so a log cannot show one history to one party and another to the next.

Pure: the caller loads and stores the witness's state."""

from __future__ import annotations

from services.audit.domain.checkpoints import Checkpoint
from services.audit.domain.proofs import ConsistencyProofDocument
from shared.merkle import verify_consistency


class WitnessRefusal(ValueError):
    """The witness will not cosign this checkpoint; the message says why."""


def check_advance(last: Checkpoint | None, new: Checkpoint, proof: ConsistencyProofDocument | None) -> None:
    """Raise WitnessRefusal unless `new` may be cosigned after `last` (None: the first checkpoint seen)."""
    if last is None:
        return
    if new.origin != last.origin:
        raise WitnessRefusal(f"checkpoint is for log {new.origin!r}, this witness follows {last.origin!r}")
    if new.tree_size < last.tree_size:
        raise WitnessRefusal(
            f"rollback: checkpoint size {new.tree_size} is smaller than the size {last.tree_size} already cosigned"
        )
    if new.tree_size == last.tree_size:
        if new.root_hash != last.root_hash:
            raise WitnessRefusal(
                f"fork: size {new.tree_size} was cosigned with root {last.root_hash.hex()}, this checkpoint has"
                f" root {new.root_hash.hex()}"
            )
        return
    if proof is None:
        raise WitnessRefusal(
            f"a consistency proof from size {last.tree_size} to {new.tree_size} is needed"
            f" (`tunegate audit consistency {last.tree_size} {new.tree_size} --out FILE`)"
        )
    if (proof.old_size, proof.new_size) != (last.tree_size, new.tree_size):
        raise WitnessRefusal(
            f"the consistency proof is from size {proof.old_size} to {proof.new_size}, expected"
            f" {last.tree_size} to {new.tree_size}"
        )
    if proof.old_root != last.root_hash.hex() or proof.new_root != new.root_hash.hex():
        raise WitnessRefusal("fork: the consistency proof's roots are not the cosigned root and the checkpoint's root")
    try:
        path = [bytes.fromhex(node) for node in proof.consistency_path]
    except ValueError:
        raise WitnessRefusal("the consistency proof holds a path entry that is not hex") from None
    if not verify_consistency(last.tree_size, new.tree_size, last.root_hash, new.root_hash, path):
        raise WitnessRefusal(
            f"fork: the tree of size {new.tree_size} does not extend the cosigned tree of size {last.tree_size}"
            " (consistency proof fails)"
        )
