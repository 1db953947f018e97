"""Who sent this entry, and may they? Checked on receipt, before any handler runs.

An entry is accepted only if it is a valid envelope, its producer may emit its type (shared/roster.py)
and its signature verifies with a key of that producer: the service key directory for services, the
principal keys the service knows for `principal:<name>`. Anything else is refused with a reason that
says which of these failed."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.bus.definition import PrincipalKeys
from shared.events.envelope import Envelope
from shared.roster import PRINCIPALS, producers_of
from shared.security.signing import PRINCIPAL_PREFIX, KeyDirectory, SignatureError, verify_envelope


class Refused(Exception):
    """An entry no handler may see; `reason` is recorded in the dead letter and the ledger."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Authenticator:
    keys: KeyDirectory
    principal_keys: PrincipalKeys | None = None

    def _lookup(self, identity: str, key_id: str) -> Ed25519PublicKey | None:
        if identity.startswith(PRINCIPAL_PREFIX):
            if self.principal_keys is None:
                return None
            return self.principal_keys.lookup(identity.removeprefix(PRINCIPAL_PREFIX), key_id)
        return self.keys.lookup(identity, key_id)

    def check(self, envelope: Envelope) -> None:
        producer = envelope.producer
        role = PRINCIPALS.name if producer.startswith(PRINCIPAL_PREFIX) else producer
        allowed = producers_of(envelope.type)
        if role not in allowed:
            who = " or ".join(sorted(allowed)) or "no one yet (reserved type)"
            raise Refused(f"producer {producer!r} may not emit {envelope.type} (allowed: {who})")
        if role == PRINCIPALS.name and envelope.actor != producer.removeprefix(PRINCIPAL_PREFIX):
            raise Refused(f"actor {envelope.actor!r} differs from the signing principal {producer!r}")
        try:
            verify_envelope(envelope, self._lookup)
        except SignatureError as exc:
            raise Refused(f"signature: {exc}") from None
        if self.principal_keys is not None and envelope.type.startswith("principal."):
            self.principal_keys.learn(envelope)
