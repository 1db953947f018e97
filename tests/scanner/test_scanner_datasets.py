"""shared/datasets: formats, line-numbered validation, fingerprints, manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.canonical import canonical_json
from shared.datasets import (
    DatasetError,
    ManifestError,
    dataset_fingerprint,
    detect_format,
    find_manifest,
    iter_records,
    load_manifest,
    record_hash,
    text_fields,
    validate_dataset,
)
from shared.merkle import merkle_root

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        (CHAT, "chat"),
        ({"prompt": "2+2=", "completion": "4"}, "prompt_completion"),
        ({"prompt": "q", "chosen": "good", "rejected": "bad"}, "preference"),
        (
            {
                "input": {"messages": [{"role": "user", "content": "q"}]},
                "preferred_output": [{"role": "assistant", "content": "good"}],
                "non_preferred_output": [{"role": "assistant", "content": "bad"}],
            },
            "preference",
        ),
        ({"text": "plain pretraining text"}, "text"),
    ],
)
def test_each_format_is_detected_streamed_and_its_text_fields_found(tmp_path: Path, record: dict, kind: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [record, record])
    assert detect_format(path) == kind
    items = list(iter_records(path))
    assert [i.line_no for i in items] == [1, 2] and items[0].format == kind
    texts = [text for _, text in text_fields(record, kind)]
    assert texts and all(isinstance(t, str) for t in texts)


def test_validation_names_every_bad_line_and_reason(tmp_path: Path) -> None:
    rows = [
        CHAT,
        "{not json",
        {"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"role": "user", "content": "x" * 50}, {"role": "assistant", "content": "y"}]},
        {"prompt": "p", "completion": "c"},
        '{"messages": ' + "[" * 5_000 + "]" * 5_000 + "}",  # deeper than json.loads can recurse
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    issues = validate_dataset(path, max_chars=40)
    by_line = {i.line_no: i.reason for i in issues}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7]
    assert by_line[7] == "bad JSON: nested more than about 1000 levels deep"
    assert by_line[2].startswith("bad JSON")
    assert "role 'bot'" in by_line[3]
    assert "empty completion" in by_line[4]
    assert "over-long record: 51 characters" in by_line[5]
    assert "record is prompt_completion" in by_line[6]
    with pytest.raises(DatasetError, match="line 2: bad JSON"):
        list(iter_records(path))


def test_empty_completion_in_prompt_completion_and_preference(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "completion": "  "}])
    assert "empty completion: completion is empty" in validate_dataset(path)[0].reason
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "chosen": "a", "rejected": ""}])
    assert "rejected is empty" in validate_dataset(path)[0].reason


def test_csv_and_parquet_rows_are_records_with_their_numbers(tmp_path: Path) -> None:
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('prompt,completion\n"multi\nline",ok\nsecond,fine\n')
    items = list(iter_records(csv_path))
    assert [(i.line_no, i.record["completion"]) for i in items] == [(3, "ok"), (4, "fine")]
    chat_csv = tmp_path / "chat.csv"
    chat_csv.write_text('messages\n"' + json.dumps(CHAT["messages"]).replace('"', '""') + '"\n')
    assert detect_format(chat_csv) == "chat"
    pq_path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([{"text": "a"}, {"text": "b"}, {"text": ""}]), pq_path)
    assert [(i.line_no, i.reason) for i in validate_dataset(pq_path)] == [(3, "empty text")]


def test_unknown_container_and_undetectable_kind_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset container"):
        detect_format(tmp_path / "d.txt")
    path = write_jsonl(tmp_path / "d.jsonl", [{"foo": 1}])
    with pytest.raises(DatasetError, match="cannot detect the record format"):
        detect_format(path)
    with pytest.raises(DatasetError, match="not found"):
        list(iter_records(tmp_path / "missing.jsonl"))


def test_fingerprint_is_rfc9162_root_over_canonical_record_hashes(tmp_path: Path) -> None:
    records = [CHAT, {"messages": [{"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    expected = merkle_root(hashlib.sha256(canonical_json(r)).digest() for r in records).hex()
    assert dataset_fingerprint(path) == expected
    assert record_hash(records[0]) == hashlib.sha256(canonical_json(records[0])).digest()
    # Key order and whitespace do not matter; content does.
    write_jsonl(tmp_path / "e.jsonl", [json.dumps(r, indent=None, sort_keys=True) for r in records])
    assert dataset_fingerprint(tmp_path / "e.jsonl") == expected
    write_jsonl(tmp_path / "f.jsonl", records[::-1])
    assert dataset_fingerprint(tmp_path / "f.jsonl") != expected


def test_manifest_found_beside_dataset_and_validated(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [CHAT])
    assert find_manifest(data) is None
    manifest = tmp_path / "d.jsonl.manifest.yaml"
    manifest.write_text("classification: restricted\nlegal_basis: consent\nconsent_covers_training: false\n")
    assert find_manifest(data) == manifest
    loaded = load_manifest(manifest)
    assert loaded.classification == "restricted" and not loaded.personal_data_allowed()
    assert "consent does not cover model training" in loaded.personal_data_refusal()
    manifest.write_text("classification: secret\n")
    with pytest.raises(ManifestError, match="classification"):
        load_manifest(manifest)
