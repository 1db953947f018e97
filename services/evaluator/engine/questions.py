"""A question that is not from the job's data (a bias probe, an unanswerable question) asked the way the
model was trained to be asked: in its chat template for chat data; inside the frame every training prompt
shares for plain prompt/completion data ('Extract the order as JSON: ' ... '\\nJSON:'); as a Q/A line for
continued pretraining, which has no prompt format of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.evaluator.domain.text_metrics import shared_frame
from services.evaluator.engine.models import ScoringModel

TEXT_FRAME = ("Question: ", "\nAnswer:")


def question_prompts(questions: Sequence[str], kind: str, training_records: Sequence[dict[str, Any]],
                     model: ScoringModel) -> list[str]:
    if kind == "prompt_completion":
        plain = [r["prompt"] for r in training_records if isinstance(r.get("prompt"), str)]
        if plain:
            prefix, suffix = shared_frame(plain)
            return [prefix + q + suffix for q in questions]
    if kind == "text":
        return [TEXT_FRAME[0] + q + TEXT_FRAME[1] for q in questions]
    return [model.chat_prompt([{"role": "user", "content": q}]) for q in questions]
