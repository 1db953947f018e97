"""Wires the audit service from its settings: the log's key, the ledger tables, every stream."""

from __future__ import annotations

from services.audit.adapters.keys import Ed25519Signer, log_keys_dir
from services.audit.adapters.tables import metadata
from services.audit.handlers import LedgerHandlers
from shared.bus.definition import ServiceDefinition
from shared.bus.principal_keys import learnt_principal_keys
from shared.config import Settings

# A ledger batch is one short transaction, and the keep-alive refreshes held entries every third of this: a
# replica takes a crashed one's entries over in about this long (bench/ledger_ingest.py measures it).
RECLAIM_IDLE_MS = 3_000


def build(settings: Settings) -> ServiceDefinition:
    handlers = LedgerHandlers(Ed25519Signer.load_or_create(log_keys_dir(settings)), settings)
    return ServiceDefinition(
        name="audit",
        batch_handler=handlers.on_events,
        metadata=[metadata],
        background=[handlers.sign_on_schedule],
        principal_keys=learnt_principal_keys("audit"),
        reclaim_idle_ms=RECLAIM_IDLE_MS,
    )
