"""What the scanner does for an erasure (GDPR Art. 17): when the registry has located the datasets that held a
subject's records (`dataset.erasure.progressed`, step `located`), delete the copies the scanner stored of
them, raw and redacted, and say so (`dataset.erasure.shredded`).

Deleting the whole copy, not rewriting it without the subject's records, is what a content-addressed store
allows (a rewritten file would no longer match its address); the registry has already made and submitted the
copy without the subject's records for retraining, in the same transaction that located them. Reports and
subject indexes stay: they hold counts and hashes, never matched text."""

from __future__ import annotations

import logging

from sqlalchemy import select

from services.scanner.adapters.tables import ScanRow
from shared.bus.context import HandlerContext
from shared.events.erasure import ErasureProgressed, ErasureShredded
from shared.storage.artifacts import ArtifactStore

log = logging.getLogger("tunegate.scanner.erasure")


async def on_erasure_progressed(data: ErasureProgressed, ctx: HandlerContext, artifacts: ArtifactStore) -> None:
    if data.step != "located" or not data.datasets:
        return
    job_ids = sorted({d.job_id for d in data.datasets})
    rows = ctx.db.scalars(select(ScanRow).where(ScanRow.job_id.in_(job_ids))).all()
    digests = sorted({d for row in rows for d in (row.source_sha256, row.dataset_sha256)})
    deleted = [digest for digest in digests if artifacts.delete(digest)]
    log.info("erasure %s: deleted %d stored dataset copies of jobs %s", data.erasure_id, len(deleted), job_ids)
    ctx.emit(
        "dataset.erasure.shredded",
        ErasureShredded(erasure_id=data.erasure_id, job_ids=job_ids, deleted=deleted),
        subject=data.erasure_id,
    )
