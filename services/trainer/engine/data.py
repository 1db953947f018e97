"""Turning records into token ids with loss masks (reading them: shared/datasets/loaded.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.datasets import DatasetError

# ------------------------------------------------------------------------------------------ tokenising


@dataclass(frozen=True)
class TokenisedSet:
    rows: list[dict[str, list[int]]]
    dropped: int  # records whose every loss token fell beyond max_seq_length
    tokens: int


def as_messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in value]


def _mask_by_spans(tokenizer: Any, text: str, spans: list[tuple[int, int]], max_len: int) -> dict[str, list[int]]:
    """Token ids of `text` with completion_mask=1 for tokens starting inside any character span."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"][:max_len]
    offsets = encoded["offset_mapping"][:max_len]
    mask = [1 if any(lo <= start < hi for lo, hi in spans) else 0 for start, _ in offsets]
    return {"input_ids": ids, "completion_mask": mask}


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def chat_row(tokenizer: Any, messages: list[dict[str, str]], max_len: int) -> dict[str, list[int]]:
    """Loss on every assistant turn: each turn's character span is found by rendering the conversation up to
    it (with the generation prompt) and up to its end, which works for any template that renders prefixes as
    prefixes; offsets map the spans onto tokens so BPE merges across a boundary cannot shift them."""
    full = _render(tokenizer, messages, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        if not full.startswith(through) or not through.startswith(before):
            raise DatasetError("the model's chat template does not render conversation prefixes as prefixes, "
                               "so assistant turns cannot be located for the loss mask")
        spans.append((len(before), len(through)))
    return _mask_by_spans(tokenizer, full, spans, max_len)


def tokenise(tokenizer: Any, kind: str, records: list[dict[str, Any]], max_len: int) -> TokenisedSet:
    rows: list[dict[str, list[int]]] = []
    dropped = 0
    eos = tokenizer.eos_token or ""
    for record in records:
        if kind == "chat":
            row = chat_row(tokenizer, as_messages(record["messages"], "user"), max_len)
        elif kind == "prompt_completion":
            prompt, completion = record["prompt"], record["completion"]
            if isinstance(prompt, str) and isinstance(completion, str):
                text = prompt + completion + eos
                row = _mask_by_spans(tokenizer, text, [(len(prompt), len(text))], max_len)
            else:
                messages = as_messages(prompt, "user") + as_messages(completion, "assistant")
                row = chat_row(tokenizer, messages, max_len)
        elif kind == "text":
            ids = tokenizer(str(record["text"]) + eos, add_special_tokens=False)["input_ids"][:max_len]
            row = {"input_ids": ids, "completion_mask": [1] * len(ids)}
        else:
            raise DatasetError(f"records of kind {kind!r} are not tokenised here (DPO tokenises its own)")
        if sum(row["completion_mask"]) == 0:
            dropped += 1
            continue
        rows.append(row)
    if not rows:
        raise DatasetError(f"no record keeps any loss token within max_seq_length={max_len}")
    return TokenisedSet(rows=rows, dropped=dropped, tokens=sum(len(r["input_ids"]) for r in rows))


def preference_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's prompt/chosen/rejected; OpenAI's input/preferred_output/non_preferred_output is mapped onto it."""
    rows = []
    for record in records:
        if "chosen" in record:
            rows.append({"prompt": record.get("prompt", ""), "chosen": record["chosen"],
                         "rejected": record["rejected"]})
        else:
            rows.append({
                "prompt": as_messages(record["input"].get("messages", []), "user"),
                "chosen": as_messages(record["preferred_output"], "assistant"),
                "rejected": as_messages(record["non_preferred_output"], "assistant"),
            })
    return rows
