"""Who submitted a job: the principal whose registered key signed the `job.requested` envelope.

The registry never takes `requester` from the job file. The envelope's producer must be
`principal:<name>`, its signature must verify against a key registered for that principal (retired keys
are known, so the message says so, but only the current key submits), the principal must be active with
role requester or admin, and the envelope's actor and the spec's requester, when given, must be that name."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from services.registry.adapters import repository
from services.registry.domain.access import SUBMIT, authorise
from services.registry.domain.errors import RegistryError, SubmissionRefused
from shared.events.envelope import Envelope
from shared.security.keys import load_public_key
from shared.security.signing import PRINCIPAL_PREFIX, SignatureError, verify_envelope


def verified_submitter(session: Session, envelope: Envelope, *, spec_requester: str | None) -> str:
    """The submitting principal's name; raises SubmissionRefused with the reason otherwise."""

    def refuse(reason: str) -> SubmissionRefused:
        return SubmissionRefused(f"job.requested {envelope.event_id} for {envelope.subject} refused: {reason}")

    if not envelope.producer.startswith(PRINCIPAL_PREFIX):
        raise refuse(
            f"producer {envelope.producer!r} is not a principal; a job is submitted signed by its requester "
            "(`tunegate submit --as NAME`, producer 'principal:NAME')"
        )
    name = envelope.producer.removeprefix(PRINCIPAL_PREFIX)
    principal = repository.load_principal(session, name)
    if principal is None:
        raise refuse(f"principal {name!r} is unknown to this registry")

    def lookup(identity: str, key_id: str) -> Ed25519PublicKey | None:
        key = principal.key(key_id) if identity == envelope.producer else None
        return None if key is None else load_public_key(key.public_key)

    try:
        verify_envelope(envelope, lookup)
        authorise(principal, SUBMIT, "submitting a job")
    except (SignatureError, RegistryError) as exc:
        raise refuse(str(exc)) from None
    assert envelope.signature is not None  # verify_envelope refuses unsigned envelopes
    current = principal.current_key
    if current is None or current.key_id != envelope.signature.key_id:
        raise refuse(
            f"key {envelope.signature.key_id} of {name!r} was retired by a rotation; sign with its current key"
        )
    if envelope.actor != name:
        raise refuse(f"actor {envelope.actor!r} differs from the signing principal {name!r}")
    if spec_requester is not None and spec_requester != name:
        raise refuse(f"spec.requester {spec_requester!r} differs from the signing principal {name!r}")
    return name
