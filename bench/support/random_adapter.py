"""A LoRA adapter with random (not zero) B matrices: it changes what the base says, and two made with
different seeds answer differently, as adapters trained on other data would. What the gateway's engine
tests, the gateway's service tests and the tokens bench serve (no training needed)."""

from __future__ import annotations

from pathlib import Path


def make_random_adapter(base: Path, target: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
                        init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(target)
    return target
