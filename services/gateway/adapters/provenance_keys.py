"""The gateway's provenance key material: its event-signing service key (shared/security/signing.py,
identity `gateway`), so there is one key store and one rotation procedure (`tunegate signing-keys rotate gateway`).
Public keys are published under `<keys dir>/trust/gateway/<key id>.pub`; verifiers read them from there."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.gateway.domain.provenance import ProvenanceSigner
from shared.security.signing import KeyDirectory

GATEWAY_IDENTITY = "gateway"


def provenance_signer(keys_dir: Path, *, create: bool = True) -> ProvenanceSigner:
    """The signer for responses: the gateway's current service key (created on first use unless `create`
    is False, as with keys mounted from secrets)."""
    directory = KeyDirectory(keys_dir)
    signer = directory.signer(GATEWAY_IDENTITY) if create else directory.existing_signer(GATEWAY_IDENTITY)
    return ProvenanceSigner.from_signer(signer)


def trusted_gateway_keys(keys_dir: Path) -> dict[str, Ed25519PublicKey]:
    """Every public key the gateway ever signed with (rotated ones included), by key id."""
    return KeyDirectory(keys_dir).public_keys(GATEWAY_IDENTITY)
