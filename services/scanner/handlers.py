"""What happens when an event reaches the scanner.

dataset.scan.requested -> resolve the dataset (path, file:// or cas://) and its manifest, scan it in a
worker thread, store source, redacted dataset, report and subject index in the artefact store, and emit:
- dataset.scanned (verdict clean / redacted / blocked) when the dataset could be read as a whole. A missing
  manifest or a sha256 that does not match the declared one is a *blocking reason* (the report still says
  everything else that is wrong, which is what the data owner needs to fix it);
- dataset.scan.failed when there is nothing to judge: the file or its manifest cannot be read, the policy
  does not exist, or lines are invalid (each reason names the line; the full list is in the report).

dataset.erasure.progressed (step located) -> delete the stored copies of the datasets that held an erased
subject's records, then dataset.erasure.shredded (services/scanner/erasure.py)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.scanner.adapters.ner import NerUnavailable
from services.scanner.adapters.tables import ScanRow
from services.scanner.domain.policy import Policy, PolicyError
from services.scanner.engine.canaries import plant_canaries
from services.scanner.engine.pipeline import ScanOptions, ScanResult, scan_dataset
from services.scanner.erasure import on_erasure_progressed
from shared.bus.context import HandlerContext
from shared.bus.definition import TypedHandler
from shared.datasets import DatasetError, DatasetManifest, ManifestError
from shared.datasets.manifest import parse_manifest
from shared.datasets.reference import DataAccess, DatasetNotFound, DatasetRef, DatasetRefError, dataset_mismatch
from shared.events.erasure import ErasureProgressed
from shared.events.payloads import (
    ArtifactRef,
    DatasetScanFailed,
    DatasetScanned,
    DatasetScanRequested,
    Payload,
    ScanDetectors,
)
from shared.storage.artifacts import ArtifactStore
from shared.yaml_models import MAX_YAML_BYTES

log = logging.getLogger("tunegate.scanner")

MAX_REASONS_IN_EVENT = 20
KEEP_ALIVE_S = 5.0


@dataclass
class ScannerDeps:
    artifacts: ArtifactStore
    data: DataAccess
    hash_key: bytes
    policy_loader: Callable[[str], Policy]
    scratch: Path
    workers: int | None = None
    ner: bool = True  # spaCy NER; bootstrap refuses to start without the model (adapters/ner.py)
    canary_key: Callable[[], bytes] | None = None  # read only when a job asks for canaries


class _Refused(Exception):
    """The scan cannot happen at all; the reasons go to dataset.scan.failed."""

    def __init__(self, *reasons: str) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


def _parse(uri: str, what: str) -> DatasetRef:
    try:
        return DatasetRef.parse(uri)
    except DatasetRefError as exc:
        raise _Refused(f"{what}: {exc}") from None


def _read_manifest(ref: DatasetRef, access: DataAccess) -> tuple[DatasetManifest, Path]:
    """A manifest read under the same confinement as datasets, capped like every YAML input."""
    with ref.open(access, max_bytes=MAX_YAML_BYTES, what="manifest") as opened:
        data = opened.handle.read()
        path = opened.path
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_manifest(text, str(path)), path


def _manifest_for(
    access: DataAccess, request: DatasetScanRequested, dataset: DatasetRef
) -> tuple[DatasetManifest | None, Path | None]:
    try:
        if request.dataset.manifest_uri:
            return _read_manifest(_parse(request.dataset.manifest_uri, "manifest"), access)
        # Beside a local dataset; a content-addressed dataset has no "beside it" and yields no candidates.
        for candidate in dataset.manifest_candidates():
            try:
                return _read_manifest(candidate, access)
            except DatasetNotFound:
                continue
    except (ManifestError, DatasetRefError) as exc:
        raise _Refused(str(exc)) from None
    return None, None


def _limited(reasons: list[str], report: ArtifactRef | None) -> list[str]:
    if len(reasons) <= MAX_REASONS_IN_EVENT:
        return reasons
    more = len(reasons) - MAX_REASONS_IN_EVENT
    where = f" (all of them in report {report.uri})" if report else ""
    return [*reasons[:MAX_REASONS_IN_EVENT], f"... and {more} more{where}"]


def _planted(deps: ScannerDeps, request: DatasetScanRequested, source: Path, workdir: Path,
             subject_field: str | None) -> Path:
    if deps.canary_key is None or request.canaries is None:
        raise _Refused("this scanner has no canary key configured; it cannot plant canaries")
    target = workdir / "planted.jsonl"
    try:
        plant_canaries(source, target, job_id=request.job_id, spec=request.canaries, key=deps.canary_key(),
                       subject_field=subject_field)
    except DatasetError as exc:
        raise _Refused(f"canaries: {exc}") from None
    return target


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
        dataset = _parse(request.dataset.uri, "dataset")
        # The manifest first: a refused reference must not leave a copy of the dataset in the store.
        manifest, manifest_path = _manifest_for(deps.data, request, dataset)
        try:
            with dataset.open(deps.data) as opened:
                source = artifacts.put_stream(opened.handle)
        except DatasetRefError as exc:
            raise _Refused(str(exc)) from None
        extra: list[str] = []
        mismatch = dataset_mismatch(
            request.dataset.sha256, source.sha256, expected_from="the request", actual_from="the dataset read"
        )
        if mismatch:
            extra.append(mismatch)
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
        # Scan the stored copy: the bytes judged are exactly the bytes referenced by `source`, plus any
        # canaries the job asked for (planted first, so they are judged and redacted like everything else).
        scanned = artifacts.resolve(source.uri)
        if request.canaries is not None:
            subject_field = manifest.subject_field if manifest is not None else None
            scanned = await asyncio.to_thread(_planted, deps, request, scanned, workdir, subject_field)
        try:
            result = await _scan_keeping_alive(
                ctx,
                scanned,
                manifest,
                options,
                workdir,
                manifest_path=manifest_path,
                extra_blocking=tuple(extra),
            )
        except (DatasetError, PolicyError, NerUnavailable) as exc:
            raise _Refused(str(exc)) from None
        report = artifacts.put_file(result.report_path)
        if result.verdict == "invalid":
            raise _Refused(*_limited(result.blocking_reasons, report))
        subject_index = artifacts.put_file(result.subject_index_path) if result.subject_index_path else None
        if result.verdict == "blocked":
            trainable = source
        elif result.output_path is not None:
            trainable = artifacts.put_file(result.output_path)
        elif scanned != artifacts.resolve(source.uri):
            trainable = artifacts.put_file(scanned)  # clean, with canaries planted: train on the planted copy
        else:
            trainable = source
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
                legal_basis=None if manifest is None else manifest.legal_basis,
                detectors=ScanDetectors.model_validate(result.detectors.as_dict()),
                subject_index=subject_index,
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
            "scanned %s for job %s: %s, %d records, %d findings in %.1fs (NER %s)",
            source.uri,
            request.job_id,
            result.verdict,
            result.source_records,
            result.findings_count,
            result.seconds,
            result.detectors.ner_model or "off",
        )

    async def on_erasure(data: ErasureProgressed, ctx: HandlerContext) -> None:
        await on_erasure_progressed(data, ctx, deps.artifacts)  # services/scanner/erasure.py

    return {DatasetScanRequested: on_scan_requested, ErasureProgressed: on_erasure}
