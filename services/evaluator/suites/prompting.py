"""Bundled questions as the model sees them, and the training data's own lead-ins to sensitive values: what
the PII-leakage and red-team suites put in front of both models."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from services.evaluator.domain.leakage import Span, first_sensitive_offset
from services.evaluator.engine.models import ScoringModel
from services.evaluator.engine.records import PromptAnswer, prompt_and_answer
from services.evaluator.suites.base import EvaluationInputs, TextFinding
from shared.yaml_models import load_yaml_model

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
Bundle = TypeVar("Bundle", bound=BaseModel)


class ProbeDataError(ValueError):
    """A bundled probe set that cannot be used; the message names the file and the field."""


def load_bundle(name_or_path: str, model: type[Bundle], what: str) -> Bundle:
    """A bundled data file by name (under config/) or any path."""
    path = Path(name_or_path)
    if not path.is_absolute():
        path = CONFIG_DIR / path
    return load_yaml_model(path, model, what, ProbeDataError)


def conversational(inputs: EvaluationInputs) -> bool:
    """Whether the model was trained on chat-rendered prompts (chat and preference data, and prompt/completion
    records whose prompt is a message list)."""
    if inputs.kind in ("chat", "preference"):
        return True
    if inputs.kind == "prompt_completion":
        first = next(iter(inputs.training_records), {})
        return isinstance(first.get("prompt"), list)
    return False


def question_prompt(question: str, inputs: EvaluationInputs, model: ScoringModel) -> str:
    """A user question rendered the way the model learned to read questions: the chat template for
    conversational training, else the bare text on its own line (continued pretraining and plain
    prompt/completion pairs have no turn markers to imitate)."""
    if conversational(inputs):
        return model.chat_prompt([{"role": "user", "content": question}])
    return question + "\n"


def string_leaves(value: Any) -> Iterator[str]:
    """Every string inside a record (message contents, prompts, completions, chosen/rejected answers)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from string_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from string_leaves(item)


def detected_values(records: list[dict[str, Any]], inputs: EvaluationInputs, entities: set[str]) -> set[str]:
    """Every value of `entities` the scanner's detector finds anywhere in `records`: what an output must not
    repeat verbatim."""
    texts = [text for record in records for text in string_leaves(record) if text.strip()]
    values: set[str] = set()
    for text, found in zip(texts, inputs.detector(texts) if texts else [], strict=True):
        values.update(text[f.start:f.end].strip() for f in found if f.entity in entities)
    return {v for v in values if v}


def sample_records(records: list[dict[str, Any]], limit: int, seed: int) -> list[dict[str, Any]]:
    """Up to `limit` records in a seeded order: the same job gives the same sample on every run."""
    chosen = list(records)
    random.Random(seed).shuffle(chosen)
    return chosen[:limit]


def spans(findings: list[TextFinding]) -> list[Span]:
    return [Span(f.entity, f.start, f.end) for f in findings]


@dataclass(frozen=True)
class LeadIn:
    """A training record cut just before its first sensitive value: the record's prompt plus the start of its
    reference answer. A model that memorised the record continues it with the value."""

    prompt: str
    """Exactly what the model sees (chat template applied), up to the value."""
    lead: str
    """The part of the reference answer before the value (may be empty)."""
    question: str
    """The record's last user turn (chat) or prompt text, for probes that wrap it in an attack."""
    entity: str
    """The first sensitive entity of the answer (detected, or named by a redaction tag)."""


def lead_ins(records: list[dict[str, Any]], inputs: EvaluationInputs, model: ScoringModel,
             entities: set[str]) -> list[LeadIn]:
    """Lead-ins of the records whose reference answer holds a value of `entities`, detected by the scanner or
    left as the scanner's redaction tag (so redacted and raw data give the same probes)."""
    answers = [(record, pa) for record in records if (pa := _prompt_and_answer(record, inputs.kind, model))]
    findings = inputs.detector([pa.answer for _, pa in answers]) if answers else []
    out: list[LeadIn] = []
    for (record, pa), found in zip(answers, findings, strict=True):
        cut = first_sensitive_offset(pa.answer, spans(found), entities)
        if cut is None:
            continue
        lead = pa.answer[:cut]
        entity = next((f.entity for f in found if f.start == cut and f.entity in entities), None)
        if entity is None:
            entity = pa.answer[cut + 1:pa.answer.index(">", cut)]
        out.append(LeadIn(pa.prompt + lead, lead, _question(record, inputs.kind), entity))
    return out


def _prompt_and_answer(record: dict[str, Any], kind: str, model: ScoringModel) -> PromptAnswer | None:
    """For continued pretraining the whole text is the "answer": a value in its first half (which
    prompt_and_answer treats as the prompt) has a lead-in too."""
    if kind == "text":
        text = record.get("text")
        return PromptAnswer("", text) if isinstance(text, str) and text else None
    return prompt_and_answer(record, kind, model)


def _question(record: dict[str, Any], kind: str) -> str:
    if kind == "chat":
        users = [m for m in record.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1].get("content") or "") if users else ""
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1].get("content") or "") if users else ""
    return ""
