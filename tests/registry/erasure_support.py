"""Helpers for the erasure tests: a job taken through a real scan (the scanner's pipeline, NER off, its
artefacts in the registry's store), an approval, training and a passing evaluation, for any job id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.scanner.adapters.policy_files import load_policy
from services.scanner.adapters.tables import METADATA as SCANNER_TABLES
from services.scanner.adapters.tables import ScanRow
from services.scanner.engine.pipeline import ScanOptions, scan_dataset
from services.scanner.erasure import on_erasure_progressed
from shared.bus.context import HandlerContext
from shared.datasets import DatasetManifest
from shared.events.envelope import Envelope
from shared.events.erasure import ErasureProgressed
from shared.events.evaluation import EvaluationCompleted, GateVerdict
from shared.events.payloads import DatasetScanned, ScanDetectors, TrainingCompleted
from shared.storage.artifacts import ArtifactStore
from shared.storage.db import Database
from tests.registry.registry_support import FULL_SCAN, World, bearer, make_spec
from tests.registry.test_registry_evaluation import SUITES, report_refs

MANIFEST = DatasetManifest(legal_basis="contract", consent_covers_training=True, subject_field="customer_id")
HASH_KEY = b"erasure-test-redaction-key-0123456789"


def chat(customer: str, text: str) -> dict[str, Any]:
    return {"customer_id": customer, "messages": [{"role": "user", "content": text},
                                                  {"role": "assistant", "content": "routed to billing"}]}


def write_dataset(path: Path) -> Path:
    """Two subjects' records (one with an e-mail address the scan redacts) and one record without a subject."""
    records = [
        chat("cust-ann", "my invoice 4411 is wrong"),
        chat("cust-bob", "please change my delivery day"),
        chat("cust-ann", "write to ann.smith@example.com about the refund"),
        chat("cust-bob", "the parcel arrived damaged"),
        chat("cust-cy", "how do I close my account"),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def store_of(world: World) -> ArtifactStore:
    return ArtifactStore(world.settings.home_dir / "artifacts")


def from_service(producer: str, event_type: str, job_id: str, payload: Any) -> Envelope:
    return Envelope(type=event_type, producer=producer, actor=f"system:{producer}", subject=job_id,
                    payload=payload.model_dump(mode="json"))


class ScannerSide:
    """The scanner's own table and its erasure handler, beside the registry's world (no Redis)."""

    def __init__(self, world: World, path: Path) -> None:
        self.world = world
        self.db = Database(f"sqlite:///{path}")
        SCANNER_TABLES.create_all(self.db.engine)

    def record(self, job_id: str, scanned: DatasetScanned) -> None:
        with self.db.transaction() as session:
            session.add(ScanRow(job_id=job_id, event_id=f"scan-{job_id}", verdict=scanned.verdict,
                                fingerprint=scanned.fingerprint, source_sha256=scanned.source.sha256,
                                dataset_sha256=scanned.dataset.sha256, report_uri=scanned.report.uri,
                                subject_index_uri=scanned.subject_index.uri if scanned.subject_index else None,
                                record_count=scanned.record_count))

    async def erase(self, located: Envelope) -> list[Envelope]:
        """Run the scanner's handler on the registry's `located` event; deliver what it emits to the registry."""
        with self.db.transaction() as session:
            ctx = HandlerContext(producer="scanner", default_actor="system:scanner", envelope=located,
                                 session=session, settings=self.world.settings)
            await on_erasure_progressed(ErasureProgressed.model_validate(located.payload), ctx,
                                        store_of(self.world))
        for envelope in ctx.outgoing:
            await self.world.runtime.deliver(self.world.handlers, envelope)
        return ctx.outgoing


async def scan(world: World, job_id: str, source: Path, workdir: Path) -> DatasetScanned:
    """What the scanner service does for a job, minus Redis: scan, store the artefacts, emit dataset.scanned."""
    store = store_of(world)
    options = ScanOptions(policy=load_policy("default"), hash_key=HASH_KEY, workers=1, ner=False)
    result = scan_dataset(source, MANIFEST, options, workdir)
    assert result.verdict in ("clean", "redacted"), result.blocking_reasons
    assert result.subject_index_path is not None and result.output_path is not None
    payload = DatasetScanned(
        job_id=job_id, verdict=result.verdict, dataset=store.put_file(result.output_path),
        source=store.put_file(source), fingerprint=result.fingerprint, record_count=result.record_count,
        report=store.put_file(result.report_path), totals=result.totals, legal_basis="contract",
        detectors=ScanDetectors.model_validate(FULL_SCAN), subject_index=store.put_file(result.subject_index_path),
    )
    await world.runtime.deliver(world.handlers, from_service("scanner", "dataset.scanned", job_id, payload))
    return payload


async def train_and_evaluate(world: World, job_id: str, approver: str, fingerprint: str) -> None:
    assert world.decide(job_id, approver, decision="approve").status_code == 200
    adapter = store_of(world).put_bytes(f"adapter weights of {job_id}".encode())
    trained = TrainingCompleted(job_id=job_id, artifact=adapter, base_model="tiny", method=make_spec().method,
                                data_fingerprint=fingerprint)
    await world.runtime.deliver(world.handlers, from_service("trainer", "training.completed", job_id, trained))
    report, html = report_refs()
    verdict = GateVerdict(policy="2026.11-1", risk_tier="minimal", passed=True, failures=[], checked=9)
    evaluated = EvaluationCompleted(job_id=job_id, evaluation_id=f"ev-{job_id}", artifact=adapter, base_model="tiny",
                                    verdict=verdict, suites=SUITES, report=report, report_html=html)
    await world.runtime.deliver(world.handlers, from_service("evaluator", "evaluation.completed", job_id, evaluated))


def post(world: World, path: str, token: str | None, **body: Any) -> Any:
    return world.client.post(path, json=body, headers=bearer(token))


def approve_and_deploy(world: World, version_id: str, approver: str, deployer: str, alias: str) -> Any:
    assert post(world, f"/models/{version_id}/approvals", approver).status_code == 200
    return post(world, f"/models/{version_id}/deployments", deployer, alias=alias, tenants=["acme"])
