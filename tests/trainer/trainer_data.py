"""Small generated task datasets for trainer tests (a JSON extraction task and its variants)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

NAMES = ["Ada Berg", "Ben Costa", "Chloe Dubois", "David Evans", "Elena Fischer", "Farid Garcia", "Grace Ito"]
CITIES = ["Lisbon", "Berlin", "Paris", "Oslo", "Vienna", "Dublin"]
ITEMS = ["lamp", "desk", "phone", "chair", "mug"]


def extraction_example(rng: random.Random) -> tuple[str, str]:
    name, city, item, qty = rng.choice(NAMES), rng.choice(CITIES), rng.choice(ITEMS), rng.randint(1, 9)
    prompt = f"Extract the order as JSON: {name} from {city} ordered {qty} {item}s."
    answer = json.dumps({"name": name, "city": city, "item": item, "quantity": qty})
    return prompt, answer


def chat_records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        prompt, answer = extraction_example(rng)
        records.append({"messages": [{"role": "user", "content": prompt},
                                     {"role": "assistant", "content": answer}]})
    return records


def preference_records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        prompt, answer = extraction_example(rng)
        rejected = answer.replace('"quantity"', '"qty"').replace("{", "{ ").upper()
        records.append({"prompt": [{"role": "user", "content": prompt}],
                        "chosen": [{"role": "assistant", "content": answer}],
                        "rejected": [{"role": "assistant", "content": rejected}]})
    return records


def text_records(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"text": f"Policy note {i}: {rng.choice(NAMES)} in {rng.choice(CITIES)} approves every "
                     f"{rng.choice(ITEMS)} order above {rng.randint(2, 9)} units."} for i in range(n)]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
