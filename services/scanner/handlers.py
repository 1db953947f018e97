"""What happens when an event reaches the scanner.

dataset.scan.requested -> resolve the dataset (path, file:// or cas://) and its manifest, scan it in a
worker thread, store source, redacted dataset, report and subject index in the artefact store, and emit:
- dataset.scanned (verdict clean / redacted / blocked) when the dataset could be read as a whole. A missing
  manifest or a sha256 that does not match the declared one is a *blocking reason* (the report still says
  everything else that is wrong, which is what the data owner needs to fix it);
- dataset.scan.failed when there is nothing to judge: the file or its manifest cannot be read, the policy
  does not exist, or lines are invalid (each reason names the line; the full list is in the report)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.scanner.adapters.tables import ScanRow
from services.scanner.domain.policy import Policy, PolicyError
from services.scanner.engine.pipeline import ScanOptions, ScanResult, scan_dataset
from shared.bus.context import HandlerContext
from shared.bus.service import TypedHandler
from shared.datasets import DatasetError, DatasetManifest, ManifestError, find_manifest, load_manifest
from shared.events.payloads import ArtifactRef, DatasetScanFailed, DatasetScanned, DatasetScanRequested, Payload
from shared.storage.artifacts import CAS_SCHEME, ArtifactStore

log = logging.getLogger("tunegate.scanner")

MAX_REASONS_IN_EVENT = 20
KEEP_ALIVE_S = 5.0


@dataclass
class ScannerDeps:
    artifacts: ArtifactStore
    hash_key: bytes
    policy_loader: Callable[[str], Policy]
    scratch: Path
    workers: int | None = None
    ner: bool | None = None  # None = NER when the optional spaCy model is installed


class _Refused(Exception):
    """The scan cannot happen at all; the reasons go to dataset.scan.failed."""

    def __init__(self, *reasons: str) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


def _resolve(artifacts: ArtifactStore, uri: str, what: str) -> Path:
    try:
        return artifacts.resolve(uri)
    except FileNotFoundError:
        raise _Refused(f"{what} {uri} not found") from None


def _manifest_for(
    artifacts: ArtifactStore, request: DatasetScanRequested, dataset: Path
) -> tuple[DatasetManifest | None, Path | None]:
    if request.dataset.manifest_uri:
        path = _resolve(artifacts, request.dataset.manifest_uri, "manifest")
    elif request.dataset.uri.startswith(CAS_SCHEME):
        return None, None  # a content-addressed dataset has no "beside it"
    else:
        found = find_manifest(dataset)
        if found is None:
            return None, None
        path = found
    try:
        return load_manifest(path), path
    except ManifestError as exc:
        raise _Refused(str(exc)) from None


def _limited(reasons: list[str], report: ArtifactRef | None) -> list[str]:
    if len(reasons) <= MAX_REASONS_IN_EVENT:
        return reasons
    more = len(reasons) - MAX_REASONS_IN_EVENT
    where = f" (all of them in report {report.uri})" if report else ""
    return [*reasons[:MAX_REASONS_IN_EVENT], f"... and {more} more{where}"]


async def _scan_keeping_alive(ctx: HandlerContext, *args: object, **kwargs: object) -> ScanResult:
    """Scans run in a thread; the event loop keeps telling the bus the entry is still being worked on."""
    task = asyncio.ensure_future(asyncio.to_thread(scan_dataset, *args, **kwargs))  # type: ignore[arg-type]
    while True:
        done, _ = await asyncio.wait({task}, timeout=KEEP_ALIVE_S)
        if done:
            return task.result()
        await ctx.still_mine()


def build_handlers(deps: ScannerDeps) -> dict[type[Payload], TypedHandler]:
    async def on_scan_requested(request: DatasetScanRequested, ctx: HandlerContext) -> None:
        workdir = Path(tempfile.mkdtemp(prefix=f"scan-{ctx.event.event_id}-", dir=deps.scratch))
        try:
            await _handle(ctx, request, workdir)
        except _Refused as refused:
            ctx.emit(
                "dataset.scan.failed",
                DatasetScanFailed(job_id=request.job_id, reasons=refused.reasons),
                subject=request.job_id,
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    async def _handle(ctx: HandlerContext, request: DatasetScanRequested, workdir: Path) -> None:
        artifacts = deps.artifacts
        dataset = _resolve(artifacts, request.dataset.uri, "dataset")
        source = artifacts.put_file(dataset)
        extra: list[str] = []
        if request.dataset.sha256 and request.dataset.sha256 != source.sha256:
            extra.append(f"dataset sha256 is {source.sha256}, but the request declared {request.dataset.sha256}")
        manifest, manifest_path = _manifest_for(artifacts, request, dataset)
        try:
            policy = deps.policy_loader(request.policy)
        except PolicyError as exc:
            raise _Refused(str(exc)) from None
        options = ScanOptions(
            policy=policy,
            hash_key=deps.hash_key,
            fmt=request.dataset.format,
            classification_override=request.classification_override,
            manifest_missing_blocks=True,
            workers=deps.workers,
            ner=deps.ner,
        )
        # Scan the stored copy: the bytes judged are exactly the bytes referenced by `source`.
        try:
            result = await _scan_keeping_alive(
                ctx,
                artifacts.resolve(source.uri),
                manifest,
                options,
                workdir,
                manifest_path=manifest_path,
                extra_blocking=tuple(extra),
            )
        except (DatasetError, PolicyError) as exc:
            raise _Refused(str(exc)) from None
        report = artifacts.put_file(result.report_path)
        if result.verdict == "invalid":
            raise _Refused(*_limited(result.blocking_reasons, report))
        subject_index = artifacts.put_file(result.subject_index_path) if result.subject_index_path else None
        if result.verdict == "blocked" or result.output_path is None:
            trainable = source
        else:
            trainable = artifacts.put_file(result.output_path)
        ctx.emit(
            "dataset.scanned",
            DatasetScanned(
                job_id=request.job_id,
                verdict=result.verdict,
                dataset=trainable,
                source=source,
                fingerprint=result.fingerprint,
                record_count=result.record_count if result.verdict != "blocked" else result.source_records,
                report=report,
                totals=result.totals,
                blocking_reasons=_limited(result.blocking_reasons, report),
                classification=result.classification,
            ),
            subject=request.job_id,
        )
        ctx.db.add(
            ScanRow(
                job_id=request.job_id,
                event_id=ctx.event.event_id,
                verdict=result.verdict,
                fingerprint=result.fingerprint,
                source_sha256=source.sha256,
                dataset_sha256=trainable.sha256,
                report_uri=report.uri,
                subject_index_uri=subject_index.uri if subject_index else None,
                record_count=result.record_count,
            )
        )
        log.info(
            "scanned %s for job %s: %s, %d records, %d findings in %.1fs",
            source.uri,
            request.job_id,
            result.verdict,
            result.source_records,
            result.findings_count,
            result.seconds,
        )

    return {DatasetScanRequested: on_scan_requested}
