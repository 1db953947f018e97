"""Loading a base model and its tokenizer, and wrapping the model in LoRA adapters, seeded for reruns."""

from __future__ import annotations

from typing import Any

from shared.models.bases import BaseModelInfo
from shared.training.hyperparameters import HyperParameters


def load_model(base: BaseModelInfo, seed: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)


def load_tokenizer(base: BaseModelInfo) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def lora_config(params: HyperParameters, task_type: str = "CAUSAL_LM") -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.lora_target_modules),
        task_type=task_type,
    )


def apply_lora(model: Any, params: HyperParameters, seed: int) -> Any:
    import torch
    from peft import get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(params.lora_target_modules) - present)
    if missing:
        raise ValueError(f"hyperparameters.lora_target_modules: {', '.join(missing)} not found in the base "
                         f"model (its modules include {', '.join(sorted(present & {'q_proj', 'v_proj'}))})")
    torch.manual_seed(seed)  # LoRA A matrices are random: seed them so reruns match bit for bit
    return get_peft_model(model, lora_config(params))
