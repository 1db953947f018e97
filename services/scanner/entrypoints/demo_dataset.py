"""The demo datasets: a small, learnable chat-format extraction task with planted personal data and secrets,
and preference pairs on the same task for the demo's reward model.

Users describe an order in one sentence; the assistant answers a JSON object. A few records carry an
email, a phone number, a credit card or an AWS key, so the demo shows them found and redacted before
training. The preference pairs (TRL format) prefer the exact JSON over one of the ways an answer goes wrong
(prose around it, a renamed key, a wrong quantity); they carry no personal data. Deterministic for a given
seed, so the demo's fingerprints are reproducible."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

SYSTEM = "Extract the order as JSON with keys name, item, quantity, city."
FIRST = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jana", "Kofi", "Lena"]
LAST = ["Meyer", "Okafor", "Silva", "Novak", "Tanaka", "Haddad", "Larsen", "Rossi", "Kowalski", "Dubois"]
ITEMS = ["notebook", "desk lamp", "coffee grinder", "backpack", "monitor stand", "water bottle", "keyboard"]
CITIES = ["Lyon", "Porto", "Leeds", "Graz", "Turin", "Ghent", "Bergen", "Cork", "Brno", "Malmo"]
# Planted values: syntactically valid (Luhn, AWS key shape, routable phone numbering plan), never real.
PLANTED = {
    "email": "{first}.{last}@example.com".lower(),
    "phone": "+44 20 7946 0{n:03d}",
    "card": "4111 1111 1111 1111",
    "aws": "AKIAIOSFODNN7EXAMPLE",
}


def demo_records(count: int = 200, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        item, city, qty = rng.choice(ITEMS), rng.choice(CITIES), rng.randint(1, 9)
        sentence = f"{first} {last} in {city} ordered {qty} {item}{'s' if qty > 1 else ''}."
        plant = i % 25
        if plant == 3:
            sentence += " Contact: " + PLANTED["email"].format(first=first, last=last).lower() + "."
        elif plant == 8:
            sentence += " Call back on " + PLANTED["phone"].format(n=rng.randint(0, 999)) + "."
        elif plant == 14:
            sentence += " Paid with card " + PLANTED["card"] + "."
        elif plant == 20:
            sentence += " (debug: aws_access_key_id=" + PLANTED["aws"] + ")"
        answer = json.dumps({"name": f"{first} {last}", "item": item, "quantity": qty, "city": city})
        records.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": sentence},
                    {"role": "assistant", "content": answer},
                ],
                "customer_id": f"C-{1000 + rng.randint(0, 99):04d}",
            }
        )
    return records


def _rejected(answer: dict[str, object], rng: random.Random) -> str:
    """One of the ways a reply to the task goes wrong, chosen by rng."""
    flaw = rng.randrange(3)
    if flaw == 0:
        return f"Sure! Here is the order: {json.dumps(answer)}. Let me know if you need anything else."
    if flaw == 1:
        return json.dumps({("qty" if key == "quantity" else key): value for key, value in answer.items()})
    wrong = int(str(answer["quantity"])) % 9 + 1  # another quantity in 1..9
    return json.dumps({**answer, "quantity": wrong})


def demo_preference_records(count: int = 48, seed: int = 11) -> list[dict[str, object]]:
    """Preference pairs (TRL prompt/chosen/rejected) on the order task, without planted personal data."""
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    for _ in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        item, city, qty = rng.choice(ITEMS), rng.choice(CITIES), rng.randint(1, 9)
        answer: dict[str, object] = {"name": f"{first} {last}", "item": item, "quantity": qty, "city": city}
        records.append({
            "prompt": [{"role": "system", "content": SYSTEM},
                       {"role": "user", "content": f"{first} {last} in {city} ordered {qty} {item}"
                                                   f"{'s' if qty > 1 else ''}."}],
            "chosen": [{"role": "assistant", "content": json.dumps(answer)}],
            "rejected": [{"role": "assistant", "content": _rejected(answer, rng)}],
        })
    return records


def _write(path: Path, records: list[dict[str, object]], manifest_fields: dict[str, object],
           writer: str) -> tuple[Path, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    manifest = path.with_name(path.name + ".manifest.yaml")
    manifest.write_text(yaml.safe_dump({
        **manifest_fields,
        "classification": "internal",
        "legal_basis": "contract",
        "consent_covers_training": True,
        **({"subject_field": "customer_id"} if "customer_id" in (records[0] if records else {}) else {}),
        "licence": "CC0-1.0",
        "provenance": f"generated by services.scanner.entrypoints.demo_dataset.{writer}",
        "owner": "demo@tunegate.invalid",
    }, sort_keys=False))
    return path, manifest


def write_demo_dataset(path: Path, *, count: int = 200, seed: int = 7) -> tuple[Path, Path]:
    """Write `path` (chat JSONL) and `<path>.manifest.yaml`; returns both paths."""
    return _write(path, demo_records(count, seed), {
        "name": "demo-orders", "description": "Synthetic order sentences with JSON extractions (tunegate demo).",
    }, "write_demo_dataset")


def write_demo_preferences(path: Path, *, count: int = 48, seed: int = 11) -> tuple[Path, Path]:
    """Write `path` (preference JSONL, TRL format) and `<path>.manifest.yaml`; returns both paths."""
    return _write(path, demo_preference_records(count, seed), {
        "name": "demo-order-preferences",
        "description": "Rated pairs of replies to synthetic order sentences: the exact JSON over a flawed reply "
                       "(tunegate demo, reward model).",
    }, "write_demo_preferences")
