"""Principal signing keys as a consumer learns them from the registry's principal.* events.

A service that must verify what people and upstream systems sign (the audit ledger records every
`job.requested`) but does not own the principals keeps this projection in its own database. The events
are on the jobs stream, so a principal's key is learnt before the first job it signs is checked; they are
themselves signed by the registry and authenticated before they are learnt."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Boolean, Column, MetaData, String, Table, select, update
from sqlalchemy.exc import IntegrityError

from shared.events.envelope import Envelope
from shared.events.payloads import PrincipalCreated, PrincipalRevoked, PrincipalRotated
from shared.security.keys import load_public_key
from shared.storage.db import Database

LEARNT_TYPES = frozenset({"principal.created", "principal.rotated", "principal.revoked"})


class PrincipalKeyProjection:
    def __init__(self, db: Database, service: str) -> None:
        self.db = db
        self.metadata = MetaData()
        self.table = Table(
            f"{service}_principal_keys",
            self.metadata,
            Column("name", String(200), primary_key=True),
            Column("key_id", String(16), primary_key=True),
            Column("public_key", String(64), nullable=False),
            Column("revoked", Boolean, nullable=False, default=False),
        )
        self._cache: dict[tuple[str, str], Ed25519PublicKey | None] = {}

    def lookup(self, name: str, key_id: str) -> Ed25519PublicKey | None:
        if (name, key_id) in self._cache:
            return self._cache[(name, key_id)]
        with self.db.transaction() as session:
            row = session.execute(
                select(self.table.c.public_key, self.table.c.revoked).where(
                    self.table.c.name == name, self.table.c.key_id == key_id
                )
            ).first()
        key = None if row is None or row.revoked else load_public_key(row.public_key)
        if key is not None:
            self._cache[(name, key_id)] = key
        return key

    def learn(self, envelope: Envelope) -> None:
        if envelope.type not in LEARNT_TYPES:
            return
        data = envelope.data
        with self.db.transaction() as session:
            if isinstance(data, PrincipalRevoked):
                session.execute(update(self.table).where(self.table.c.name == data.name).values(revoked=True))
                self._cache = {k: v for k, v in self._cache.items() if k[0] != data.name}
                return
            assert isinstance(data, PrincipalCreated | PrincipalRotated)
            if data.public_key is None or data.key_id is None:
                return
            try:
                with session.begin_nested():
                    session.execute(
                        self.table.insert().values(
                            name=data.name, key_id=data.key_id, public_key=data.public_key, revoked=False
                        )
                    )
            except IntegrityError:
                pass  # learnt already (a redelivery)


def learnt_principal_keys(service: str) -> Callable[[Database], PrincipalKeyProjection]:
    """For ServiceDefinition.principal_keys: the projection in the service's own database."""
    return lambda db: PrincipalKeyProjection(db, service)
