"""What `make demo` trains: a JSON-extraction chat task on the `tiny` base, sized for 2 CPU cores.

Measured here (2 shared cores): building `tiny` 45-90 s once, then these 60 LoRA steps 10-30 s; the tuned
adapter answers held-out prompts with the task's JSON schema where the base does not."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

DEMO_BASE = "tiny"
DEMO_METHOD: dict[str, Any] = {"kind": "sft", "adapter": "lora", "differential_privacy": False}
DEMO_HYPERPARAMETERS: dict[str, Any] = {
    "max_steps": 60,
    "learning_rate": 5e-3,
    "batch_size": 8,
    "max_seq_length": 96,
    "logging_steps": 5,
    "save_steps": 20,
}
NAMES = ["Ada Berg", "Ben Costa", "Chloe Dubois", "David Evans", "Elena Fischer", "Farid Garcia", "Grace Ito"]
CITIES = ["Lisbon", "Berlin", "Paris", "Oslo", "Vienna", "Dublin"]
ITEMS = ["lamp", "desk", "phone", "chair", "mug"]


def demo_records(n: int = 48, seed: int = 0) -> list[dict[str, Any]]:
    """Chat records: a free-text order in, its JSON out (synthetic names, no real personal data)."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        name, city, item, qty = rng.choice(NAMES), rng.choice(CITIES), rng.choice(ITEMS), rng.randint(1, 9)
        prompt = f"Extract the order as JSON: {name} from {city} ordered {qty} {item}s."
        answer = json.dumps({"name": name, "city": city, "item": item, "quantity": qty})
        records.append({"messages": [{"role": "user", "content": prompt},
                                     {"role": "assistant", "content": answer}]})
    return records


def write_demo_dataset(path: Path, n: int = 48, seed: int = 0) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in demo_records(n, seed)), encoding="utf-8")
    return path
