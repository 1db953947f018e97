"""Wires the audit service: every stream, its own consumer group, batches appended to the ledger."""

from __future__ import annotations

import asyncio
import logging

from services.audit.application import open_ledger
from shared.bus.definition import ServiceDefinition
from shared.bus.lifecycle import ServiceRuntime
from shared.config import Settings
from shared.events.envelope import Envelope

log = logging.getLogger("tunegate.audit")


def build(settings: Settings) -> ServiceDefinition:
    ledger = open_ledger(settings)

    async def append_batch(runtime: ServiceRuntime, envelopes: list[Envelope]) -> None:
        # One transaction per batch: the entry is committed before the bus acks it, and a redelivered
        # event_id is skipped by the ledger itself (exactly one entry per event).
        result = await asyncio.to_thread(ledger.append, envelopes)
        if result.skipped_event_ids:
            log.info("skipped %d already-recorded events", len(result.skipped_event_ids))
        await asyncio.to_thread(ledger.maybe_sign)

    async def sign_on_schedule(runtime: ServiceRuntime) -> None:
        """Sign trailing entries when traffic stops, so every entry is covered within the interval."""
        while True:
            await asyncio.sleep(settings.sth_max_interval_s)
            try:
                await asyncio.to_thread(ledger.maybe_sign)
            except Exception:
                log.exception("scheduled tree-head signing failed")

    return ServiceDefinition(
        name="audit",
        batch_handler=append_batch,
        background=[sign_on_schedule],
        learns_principal_keys=True,
    )
