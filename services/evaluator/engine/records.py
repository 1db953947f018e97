"""Records as prompts: what the model is asked and what the training data says it should answer, for each
record format, rendered the way the trainer rendered it (services/trainer/engine/data.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.evaluator.engine.models import ScoringModel


@dataclass(frozen=True)
class PromptAnswer:
    prompt: str
    """The exact text the model sees before the answer (chat template applied)."""
    answer: str
    """The reference answer from the data."""


def _messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{"role": str(m.get("role", role)), "content": str(m.get("content") or "")} for m in value]


def prompt_and_answer(record: dict[str, Any], kind: str, model: ScoringModel) -> PromptAnswer | None:
    """The last assistant turn (chat), the completion (prompt/completion), the second half of the words
    (text: continued pretraining has no prompt, so the first half is the prompt). None when the record
    has nothing to answer (no assistant turn; preference records, which are judged by their own suite)."""
    if kind == "chat":
        messages = _messages(record.get("messages", []), "user")
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None or last == 0:
            return None
        return PromptAnswer(model.chat_prompt(messages[:last]), messages[last]["content"])
    if kind == "prompt_completion":
        prompt, completion = record.get("prompt"), record.get("completion")
        if isinstance(prompt, str) and isinstance(completion, str):
            return PromptAnswer(prompt, completion)
        messages = _messages(prompt or [], "user")
        answer = _messages(completion or [], "assistant")
        if not messages or not answer:
            return None
        return PromptAnswer(model.chat_prompt(messages), answer[-1]["content"])
    if kind == "text":
        words = str(record.get("text", "")).split(" ")
        if len(words) < 4:
            return None
        half = len(words) // 2
        return PromptAnswer(" ".join(words[:half]) + " ", " ".join(words[half:]))
    return None


def prompts_and_answers(records: list[dict[str, Any]], kind: str, model: ScoringModel) -> list[PromptAnswer]:
    return [pa for r in records if (pa := prompt_and_answer(r, kind, model)) is not None]
