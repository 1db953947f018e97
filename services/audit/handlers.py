"""What the audit service does when events arrive, and on its signing timer.

Every stream is read by the audit group; a batch of envelopes (already signature-checked by the bus runtime)
is appended in one transaction before the bus acknowledges it, and a tree head is signed when one is due."""

from __future__ import annotations

import asyncio
import logging

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService
from shared.bus.lifecycle import ServiceRuntime
from shared.config import Settings
from shared.events.envelope import Envelope

log = logging.getLogger("tunegate.audit")


class LedgerHandlers:
    """The ledger lives on the runtime's own database engine (one engine per database); it is created on
    the first call, once the runtime has opened that engine and created the ledger tables."""

    def __init__(self, signer: Ed25519Signer, settings: Settings) -> None:
        self.signer = signer
        self.settings = settings
        self._ledger: LedgerService | None = None

    def ledger(self, runtime: ServiceRuntime) -> LedgerService:
        if self._ledger is None:
            self._ledger = LedgerService(LedgerStore(runtime.db), self.signer, self.settings)
        return self._ledger

    async def on_events(self, runtime: ServiceRuntime, envelopes: list[Envelope]) -> None:
        """Exactly one entry per event: a redelivered event_id is skipped by the ledger itself, and the
        entries are committed before the bus acks the batch."""
        ledger = self.ledger(runtime)
        result = await asyncio.to_thread(ledger.append, envelopes)
        if result.skipped_event_ids:
            log.info("skipped %d already-recorded events", len(result.skipped_event_ids))
        await asyncio.to_thread(ledger.maybe_sign)

    async def sign_on_schedule(self, runtime: ServiceRuntime) -> None:
        """Sign trailing entries when traffic stops, so every entry is covered within the interval."""
        ledger = self.ledger(runtime)
        while True:
            await asyncio.sleep(self.settings.sth_max_interval_s)
            try:
                await asyncio.to_thread(ledger.maybe_sign)
            except Exception:
                log.exception("scheduled tree-head signing failed")
