"""Wires the audit service from its settings: the log's key, the ledger tables, every stream."""

from __future__ import annotations

from services.audit.adapters.keys import Ed25519Signer, log_keys_dir
from services.audit.adapters.tables import metadata
from services.audit.handlers import LedgerHandlers
from shared.bus.definition import ServiceDefinition
from shared.bus.principal_keys import learnt_principal_keys
from shared.config import Settings


def build(settings: Settings) -> ServiceDefinition:
    handlers = LedgerHandlers(Ed25519Signer.load_or_create(log_keys_dir(settings)), settings)
    return ServiceDefinition(
        name="audit",
        batch_handler=handlers.on_events,
        metadata=[metadata],
        background=[handlers.sign_on_schedule],
        principal_keys=learnt_principal_keys("audit"),
    )
