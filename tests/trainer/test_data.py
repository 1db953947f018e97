"""Dataset reading recomputes the scanner's fingerprint; loss masks cover exactly the assistant text."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.trainer.engine.data import tokenise
from services.trainer.engine.models import load_tokenizer
from shared.datasets import DatasetError, dataset_fingerprint
from shared.datasets.loaded import load_dataset
from shared.models.bases import BaseModelInfo
from tests.trainer.trainer_data import chat_records, write_jsonl


def test_fingerprint_matches_the_shared_definition_even_without_a_file_extension(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "data.jsonl", chat_records(9, seed=1))
    cas_like = tmp_path / "3f" / "3f00"  # artefacts live under their digest, with no extension
    cas_like.parent.mkdir()
    cas_like.write_bytes(source.read_bytes())
    loaded = load_dataset(cas_like)
    assert loaded.kind == "chat" and len(loaded.records) == 9
    assert loaded.fingerprint == dataset_fingerprint(source)
    other = write_jsonl(tmp_path / "other.jsonl", chat_records(9, seed=2))
    assert load_dataset(other).fingerprint != loaded.fingerprint


def test_invalid_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(DatasetError, match="line 2"):
        load_dataset(path)


def test_chat_loss_mask_covers_every_assistant_turn_and_nothing_else(tiny_base: BaseModelInfo) -> None:
    tokenizer = load_tokenizer(tiny_base)
    messages = [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]
    [row] = tokenise(tokenizer, "chat", [{"messages": messages}], max_len=512).rows
    learned = tokenizer.decode([t for t, m in zip(row["input_ids"], row["completion_mask"], strict=True) if m])
    assert learned == "first answer<|eos|>second answer<|eos|>"


def test_prompt_completion_mask_and_truncation(tiny_base: BaseModelInfo) -> None:
    tokenizer = load_tokenizer(tiny_base)
    records = [{"prompt": "Q: two plus two? A:", "completion": " four"}]
    [row] = tokenise(tokenizer, "prompt_completion", records, max_len=512).rows
    learned = tokenizer.decode([t for t, m in zip(row["input_ids"], row["completion_mask"], strict=True) if m])
    assert learned == " four<|eos|>"
    with pytest.raises(DatasetError, match="max_seq_length=3"):
        tokenise(tokenizer, "prompt_completion", records, max_len=3)
