"""The keys the bus checks a `principal:<name>` signature with: those this registry holds for that
principal, while it is active. A rotated-out key still verifies here (the domain then refuses it with a
precise reason); a revoked principal has none, so whatever it signs is refused before any handler runs."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.registry.adapters import repository
from shared.events.envelope import Envelope
from shared.security.keys import load_public_key
from shared.storage.db import Database


class RegisteredPrincipalKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(self, name: str, key_id: str) -> Ed25519PublicKey | None:
        with self.db.transaction() as session:
            principal = repository.load_principal(session, name)
            key = principal.key(key_id) if principal is not None and principal.active else None
            return None if key is None else load_public_key(key.public_key)

    def learn(self, envelope: Envelope) -> None:
        """The registry is where principals are made: there is nothing to learn from its own events."""
