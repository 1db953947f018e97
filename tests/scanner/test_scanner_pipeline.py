"""scan_dataset end to end on files: verdicts, redaction, fingerprints, subject index, report contents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.scanner.engine.pipeline import ScanOptions, scan_dataset
from services.scanner.entrypoints.demo_dataset import PLANTED, demo_records, write_demo_dataset
from shared.datasets import DatasetManifest, dataset_fingerprint, load_manifest, record_hash

CONSENTED = DatasetManifest(legal_basis="contract", consent_covers_training=True, subject_field="customer_id")


def chat(user: str, answer: str = "ok", **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra}


def write(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_demo_dataset_is_redacted_fingerprinted_and_indexed(
    tmp_path: Path, options: ScanOptions, workdir: Path
) -> None:
    data, manifest_path = write_demo_dataset(tmp_path / "demo.jsonl")
    result = scan_dataset(data, load_manifest(manifest_path), options, workdir)
    assert result.verdict == "redacted", result.blocking_reasons
    assert result.record_count == 200 and result.dropped_records == 0
    # Without NER too, the name in every assistant answer's JSON ("name": "Alice Meyer") is found by its key.
    assert set(result.totals) == {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "AWS_ACCESS_KEY", "PERSON"}
    assert result.totals["PERSON"] == {"redact": 200}
    assert all(set(per) == {"redact"} for per in result.totals.values())
    assert result.output_path is not None
    output = result.output_path.read_text()
    for planted in (PLANTED["card"], PLANTED["aws"], "@example.com", "+44 20 7946"):
        assert planted not in output
        assert planted not in result.report_path.read_text(), "the report must never carry matched text"
    assert "<AWS_ACCESS_KEY>" in output and "*******************" in output
    # The trainer recomputes the fingerprint from the artefact alone.
    assert result.fingerprint == dataset_fingerprint(result.output_path)
    report = json.loads(result.report_path.read_text())
    assert report["verdict"] == "redacted" and report["fingerprint"] == result.fingerprint
    first = next(f for f in report["findings"] if f["entity"] == "EMAIL_ADDRESS")
    assert set(first) == {"line", "field", "start", "end", "entity", "score", "action", "operator"}
    source_line = data.read_text().splitlines()[first["line"] - 1]
    original = json.loads(source_line)["messages"][1]["content"]
    assert "@example.com" in original[first["start"] : first["end"]]
    # Subject index: every output record hash appears under its subject's id hash.
    assert result.subject_index_path is not None
    index = json.loads(result.subject_index_path.read_text())
    out_records = [json.loads(line) for line in output.splitlines()]
    listed = {h for hashes in index["subjects"].values() for h in hashes}
    assert listed == {record_hash(r).hex() for r in out_records}
    assert index["fingerprint"] == result.fingerprint and result.subjects == len(index["subjects"])


def test_parallel_scan_equals_sequential(tmp_path: Path, options: ScanOptions) -> None:
    data = write(tmp_path / "d.jsonl", demo_records(200, seed=3))
    one = scan_dataset(data, CONSENTED, options, tmp_path / "one")
    options.workers, options.chunk_size = 2, 16
    two = scan_dataset(data, CONSENTED, options, tmp_path / "two")
    assert two.workers == 2
    assert (one.verdict, one.fingerprint, one.totals) == (two.verdict, two.fingerprint, two.totals)
    assert one.output_path and two.output_path
    assert one.output_path.read_bytes() == two.output_path.read_bytes()


def test_secrets_that_cannot_be_redacted_block_and_name_the_line(tmp_path: Path, options: ScanOptions) -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    data = write(tmp_path / "d.jsonl", [chat("hello", customer_id="a"), chat(f"deploy with {key}", customer_id="b")])
    result = scan_dataset(data, CONSENTED, options, tmp_path / "w")
    assert result.verdict == "blocked"
    assert result.blocking_reasons == ["policy blocks the dataset on PRIVATE_KEY: found on line(s) 2"]
    assert result.output_path is None, "a blocked dataset leaves nothing to train on"


def test_personal_data_without_legal_basis_blocks(tmp_path: Path, options: ScanOptions) -> None:
    data = write(tmp_path / "d.jsonl", [chat("mail me: jane.doe@example.org")])
    no_basis = scan_dataset(data, DatasetManifest(), options, tmp_path / "a")
    assert no_basis.verdict == "blocked" and "EMAIL_ADDRESS x1" in no_basis.blocking_reasons[0]
    consent_elsewhere = DatasetManifest(legal_basis="consent", consent_covers_training=False)
    assert scan_dataset(data, consent_elsewhere, options, tmp_path / "b").verdict == "blocked"
    clean = write(tmp_path / "c.jsonl", [chat("nothing personal here")])
    assert scan_dataset(clean, DatasetManifest(), options, tmp_path / "c").verdict == "clean"


def test_missing_manifest_blocks_only_when_asked(tmp_path: Path, options: ScanOptions) -> None:
    clean = write(tmp_path / "c.jsonl", [chat("nothing personal here")])
    assert scan_dataset(clean, None, options, tmp_path / "a").verdict == "clean"
    options.manifest_missing_blocks = True
    result = scan_dataset(clean, None, options, tmp_path / "b")
    assert result.verdict == "blocked" and "no dataset manifest" in result.blocking_reasons[0]


def test_health_identifiers_drop_records_by_default_and_stay_in_restricted(
    tmp_path: Path, options: ScanOptions
) -> None:
    records = [chat("patient MRN: 00482913 was seen"), chat("weather is fine"), chat("diagnosed with E11.9")]
    data = write(tmp_path / "d.jsonl", records)
    result = scan_dataset(data, CONSENTED.model_copy(update={"subject_field": None}), options, tmp_path / "a")
    assert result.verdict == "redacted" and result.dropped_lines == [1, 3] and result.record_count == 1
    assert result.fingerprint == dataset_fingerprint(result.output_path)  # type: ignore[arg-type]
    options.classification_override = "restricted"
    restricted = scan_dataset(data, CONSENTED.model_copy(update={"subject_field": None}), options, tmp_path / "b")
    assert restricted.dropped_records == 0 and restricted.totals["ICD10_CODE"] == {"allow": 1}
    assert restricted.totals["MEDICAL_RECORD_NUMBER"] == {"redact": 1}
    assert "00482913" not in restricted.output_path.read_text()  # type: ignore[union-attr]


def test_invalid_lines_are_all_reported_and_nothing_is_written(tmp_path: Path, options: ScanOptions) -> None:
    data = write(tmp_path / "d.jsonl", [chat("a", customer_id="x"), "{broken", chat("b"), chat("c", customer_id="z")])
    result = scan_dataset(data, CONSENTED, options, tmp_path / "w")
    assert result.verdict == "invalid" and result.output_path is None and result.subject_index_path is None
    assert [n for n, _ in result.issues] == [2, 3]
    assert "subject field 'customer_id'" in result.issues[1][1]
    assert json.loads(result.report_path.read_text())["validation"]["issues"] == 2


def test_keyed_hash_is_stable_per_key(tmp_path: Path, options: ScanOptions) -> None:
    data = write(tmp_path / "d.jsonl", [chat("mail bob@example.com"), chat("again bob@example.com")])
    manifest = DatasetManifest(classification="confidential", legal_basis="contract")
    result = scan_dataset(data, manifest, options, tmp_path / "a")
    first, second = (json.loads(line)["messages"][0]["content"] for line in result.output_path.read_text().splitlines())  # type: ignore[union-attr]
    assert first.split()[-1] == second.split()[-1] and "bob" not in first
    options.hash_key = b"another-key-0123456789abcdefghij"
    other = scan_dataset(data, manifest, options, tmp_path / "b")
    assert other.output_path.read_text() != result.output_path.read_text()  # type: ignore[union-attr]


@pytest.mark.parametrize("policy_override", ["public"])
def test_classification_changes_the_verdict(tmp_path: Path, options: ScanOptions, policy_override: str) -> None:
    data = write(tmp_path / "d.jsonl", [chat("call +1 212 555 0187")])
    options.classification_override = policy_override
    result = scan_dataset(data, CONSENTED.model_copy(update={"subject_field": None}), options, tmp_path / "a")
    assert result.verdict == "blocked" and "PHONE_NUMBER" in result.blocking_reasons[0]


EMAIL = "jane.doe@example.org"


@pytest.mark.parametrize(
    "record",
    [
        {"prompt": f"mail {EMAIL}", "completion": "noted"},
        {"prompt": "who?", "chosen": f"it is {EMAIL}", "rejected": "nobody"},
        {
            "input": {"messages": [{"role": "user", "content": f"reply to {EMAIL}"}]},
            "preferred_output": [{"role": "assistant", "content": "done"}],
            "non_preferred_output": [{"role": "assistant", "content": f"sent to {EMAIL}"}],
        },
        {"text": f"Contact {EMAIL} for the archive."},
    ],
)
def test_every_format_is_redacted_in_place(tmp_path: Path, options: ScanOptions, record: dict[str, object]) -> None:
    data = write(tmp_path / "d.jsonl", [record])
    result = scan_dataset(data, CONSENTED.model_copy(update={"subject_field": None}), options, tmp_path / "w")
    assert result.verdict == "redacted" and result.output_path is not None
    out = json.loads(result.output_path.read_text())
    assert set(out) == set(record) and EMAIL not in json.dumps(out) and "<EMAIL_ADDRESS>" in json.dumps(out)
    assert result.fingerprint == dataset_fingerprint(result.output_path)


def test_csv_and_parquet_sources_become_jsonl(tmp_path: Path, options: ScanOptions) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": f"mail {EMAIL}", "completion": "ok"}, {"prompt": "hi", "completion": "there"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    (tmp_path / "d.csv").write_text("prompt,completion\n" + "".join(f"{r['prompt']},{r['completion']}\n" for r in rows))
    manifest = CONSENTED.model_copy(update={"subject_field": None})
    results = [
        scan_dataset(tmp_path / name, manifest, options, tmp_path / name.replace(".", "-"))
        for name in ("d.parquet", "d.csv")
    ]
    assert [r.container for r in results] == ["parquet", "csv"]
    assert results[0].fingerprint == results[1].fingerprint  # same records, same fingerprint
    assert results[0].output_path is not None
    assert [json.loads(line)["prompt"] for line in results[0].output_path.read_text().splitlines()] == [
        "mail <EMAIL_ADDRESS>",
        "hi",
    ]
