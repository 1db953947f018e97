"""Regenerate tiny_corpus.txt, the bundled pretraining text for the `tiny` base model.

The corpus is generated from templates with a fixed seed so it is reproducible and carries no third-party
text or real personal data; it mixes plain English prose, key/value records, JSON objects and chat-shaped
exchanges so that a tiny model pretrained on it already knows the shapes fine-tuning tasks ask for.

    python -m shared.models.assets.generate_corpus   # rewrites shared/models/assets/tiny_corpus.txt
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CORPUS_PATH = Path(__file__).with_name("tiny_corpus.txt")
SEED = 20261129
TARGET_BYTES = 600_000

FIRST = ["Ada", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Yara", "Zoe"]
LAST = ["Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Khan",
        "Lopez", "Meyer", "Novak", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber"]
CITIES = ["Lisbon", "Berlin", "Paris", "Madrid", "Oslo", "Vienna", "Dublin", "Prague", "Warsaw", "Athens",
          "Rome", "Milan", "Lyon", "Porto", "Munich", "Zurich", "Helsinki", "Riga", "Tallinn", "Sofia"]
ITEMS = ["laptop", "chair", "desk", "lamp", "printer", "monitor", "keyboard", "phone", "tablet", "camera",
         "router", "headset", "cable", "charger", "notebook", "backpack", "bottle", "mug", "speaker", "watch"]
COLOURS = ["red", "blue", "green", "black", "white", "grey", "yellow", "orange", "purple", "brown"]
TEAMS = ["finance", "support", "sales", "legal", "research", "operations", "marketing", "security"]
STATUSES = ["open", "closed", "pending", "shipped", "delivered", "cancelled", "approved", "rejected"]
VERBS = ["ordered", "bought", "returned", "requested", "reviewed", "approved", "shipped", "repaired"]
TOPICS = ["the weather", "the budget", "a delayed delivery", "a broken device", "the new policy",
          "an invoice", "the quarterly report", "a training course", "the office move", "a refund"]
ADJ = ["quick", "careful", "short", "clear", "polite", "detailed", "simple", "formal", "friendly", "direct"]
NOUNS = ["river", "mountain", "garden", "library", "market", "station", "harbour", "bridge", "forest", "school"]


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _prose(rng: random.Random) -> str:
    name, city, item = _person(rng), rng.choice(CITIES), rng.choice(ITEMS)
    templates = [
        f"{name} lives in {city} and works in {rng.choice(TEAMS)}.",
        f"On day {rng.randint(1, 28)}, {name} {rng.choice(VERBS)} a {rng.choice(COLOURS)} {item} in {city}.",
        f"The {rng.choice(NOUNS)} near {city} is {rng.choice(ADJ)} and old.",
        f"{name} wrote a {rng.choice(ADJ)} note about {rng.choice(TOPICS)}.",
        f"In {city}, the {rng.choice(TEAMS)} team has {rng.randint(2, 40)} people.",
        f"The {item} costs {rng.randint(5, 900)} euros and the order is {rng.choice(STATUSES)}.",
        f"{name} is {rng.randint(18, 80)} years old and likes the {rng.choice(NOUNS)}.",
        f"Please send the {rng.choice(ADJ)} summary of {rng.choice(TOPICS)} to {name}.",
    ]
    return " ".join(rng.sample(templates, k=rng.randint(2, 4)))


def _record(rng: random.Random) -> dict[str, object]:
    return {
        "name": _person(rng),
        "city": rng.choice(CITIES),
        "age": rng.randint(18, 80),
        "item": rng.choice(ITEMS),
        "colour": rng.choice(COLOURS),
        "quantity": rng.randint(1, 9),
        "status": rng.choice(STATUSES),
    }


def _json_line(rng: random.Random) -> str:
    record = _record(rng)
    keys = rng.sample(sorted(record), k=rng.randint(2, len(record)))
    return json.dumps({key: record[key] for key in keys})


def _extraction(rng: random.Random) -> str:
    record = _record(rng)
    text = (
        f"{record['name']} from {record['city']} {rng.choice(VERBS)} {record['quantity']} "
        f"{record['colour']} {record['item']}s; status {record['status']}."
    )
    keys = ["name", "city", "item", "quantity"]
    return f"Text: {text}\nJSON: " + json.dumps({key: record[key] for key in keys})


def _chat(rng: random.Random) -> str:
    name, topic = _person(rng), rng.choice(TOPICS)
    return (
        f"User: Can you write a {rng.choice(ADJ)} reply to {name} about {topic}?\n"
        f"Assistant: Dear {name}, thank you for your message about {topic}. "
        f"We will answer within {rng.randint(1, 9)} days."
    )


def _key_values(rng: random.Random) -> str:
    record = _record(rng)
    return "; ".join(f"{key}: {value}" for key, value in record.items())


def generate(seed: int = SEED, target_bytes: int = TARGET_BYTES) -> str:
    rng = random.Random(seed)
    makers = [_prose, _prose, _json_line, _extraction, _extraction, _chat, _key_values]
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        block = rng.choice(makers)(rng)
        parts.append(block)
        size += len(block) + 1
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    CORPUS_PATH.write_text(generate(), encoding="utf-8")
    print(f"wrote {CORPUS_PATH} ({CORPUS_PATH.stat().st_size} bytes)")
