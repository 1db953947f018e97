"""Canaries are planted before the scan and meet the same policy as every other record: secret-shaped ones
are redacted out of the trainable copy, plain ones survive into it; the values come from the canary key
alone and never appear in the event."""

from __future__ import annotations

import json

import pytest

from services.scanner.entrypoints.demo_dataset import write_demo_dataset
from shared.evaluation.canaries import canary_key, derive_canaries
from shared.evaluation.options import CanarySpec
from shared.storage.artifacts import sha256_file
from tests.scanner.test_scanner_handlers import Harness


@pytest.fixture
def harness(tmp_path):  # type: ignore[no-untyped-def]
    return Harness(tmp_path / "home")


def trainable_text(harness: Harness, event) -> str:  # type: ignore[no-untyped-def]
    return harness.deps.artifacts.verify(event.data.dataset).read_text()


def test_secret_shaped_canaries_are_redacted_and_plain_ones_survive(harness: Harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, _ = write_demo_dataset(tmp_path / "demo.jsonl")
    ref = {"uri": f"file://{data}", "sha256": sha256_file(data)}
    key = canary_key(harness.settings)

    secret_spec = CanarySpec(count=3, repeats=2, shape="api_key")
    [secret_event] = harness.request(ref, canaries=secret_spec.model_dump())
    assert secret_event.type == "dataset.scanned", secret_event.data
    assert secret_event.data.record_count == 200 + 6
    text = trainable_text(harness, secret_event)
    secrets = derive_canaries(key, "job-1", secret_spec)
    assert not any(secret in text for secret in secrets), "api_key canaries are redacted like any API key"
    assert text.count("The deploy key is <API_KEY>") == 6
    assert secret_event.data.totals["API_KEY"]["redact"] >= 6
    assert not any(secret in json.dumps(secret_event.payload) for secret in secrets)

    pin_spec = CanarySpec(count=4, repeats=3, shape="pin")
    [pin_event] = harness.request(ref, canaries=pin_spec.model_dump())
    pins = derive_canaries(key, "job-1", pin_spec)
    text = trainable_text(harness, pin_event)
    assert all(text.count(f"The door code is {pin}.") == 3 for pin in pins), "plain canaries survive the scan"
    assert pin_event.data.record_count == 200 + 12
    assert not any(pin in json.dumps(pin_event.payload) for pin in pins)
    # The source reference stays the submitted file: what the requester sent is what the ledger names.
    assert pin_event.data.source.sha256 == sha256_file(data)


def test_canaries_cannot_go_into_preference_records(harness: Harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "prefs.jsonl"
    record = {"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}
    path.write_text("\n".join(json.dumps(record) for _ in range(5)) + "\n")
    manifest = tmp_path / "prefs.manifest.yaml"
    manifest.write_text("legal_basis: contract\nconsent_covers_training: true\nclassification: internal\n")
    [event] = harness.request({"uri": f"file://{path}", "sha256": sha256_file(path)},
                              canaries=CanarySpec(count=1).model_dump())
    assert event.type == "dataset.scan.failed"
    assert any("canaries cannot be planted into preference records" in r for r in event.data.reasons), event.data
