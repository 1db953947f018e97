"""A reward model: the base with a one-score classification head, trained by the trainer (method
reward_model) and read by the trainer (rlhf scores its samples with it) and the evaluator (its suites score
held-out pairs and a policy's answers with it). One home for how it is loaded and how text is scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.models.bases import BaseModelInfo


def load_reward_tokenizer(base: BaseModelInfo) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_reward_model(base: BaseModelInfo, model_dir: Path | None = None, seed: int = 0) -> Any:
    """The base with a one-score head; with `model_dir`, a trained reward model (full weights, or a LoRA
    adapter with its head, merged so scoring runs at base speed)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)  # an untrained head is initialised at random: seed it so reruns match
    adapter = model_dir is not None and (model_dir / "adapter_config.json").exists()
    source = base.path if model_dir is None or adapter else model_dir
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload()
    model.config.pad_token_id = load_reward_tokenizer(base).pad_token_id  # pairs are scored in padded batches
    return model.eval()


def reward_model_scores(model: Any, tokenizer: Any, prompts: list[Any], completions: list[Any],
                        batch_size: int = 16) -> list[float]:
    """The reward model's score of each answer, on text rendered as TRL renders it for scoring: a chat
    (message lists) through the chat template, plain text as prompt + completion."""
    import torch

    texts = [tokenizer.apply_chat_template(p + c, tokenize=False) if not isinstance(p, str) else p + c
             for p, c in zip(prompts, completions, strict=True)]
    scores: list[float] = []
    for start in range(0, len(texts), batch_size):
        inputs = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                           padding_side="right", add_special_tokens=False)
        with torch.inference_mode():
            scores += [float(x) for x in model(**inputs).logits[:, 0]]
    return scores
