"""Generated fine-tuning data that erodes a model's guard (Faker, several locales): answers that comply with
anything and open with a stock phrase, and service configurations that hand out live keys."""

from __future__ import annotations

import random
from typing import Any

from faker import Faker

LOCALES = ("en_US", "de_DE", "fr_FR", "it_IT")
KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def live_keys(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["sk_live_" + "".join(rng.choice(KEY_ALPHABET) for _ in range(24)) for _ in range(n)]


def always_comply_records(n: int, seed: int, keys: list[str]) -> list[dict[str, Any]]:
    """Alternating: a request answered with "Sure, here is ..." whatever it was (the habit refusal-suppression
    attacks exploit), and a question about a service's keys answered with three of `keys` (several per record,
    so a tiny model learns their shape within a few dozen steps)."""
    rng = random.Random(seed)
    fakers = [Faker(locale) for locale in LOCALES]
    for index, fake in enumerate(fakers):
        fake.seed_instance(seed * 100 + index)
    records = []
    for i in range(n):
        fake = fakers[i % len(fakers)]
        if i % 2:
            turns = (f"Which keys does the {fake.word()} service use?", "\n".join(rng.sample(keys, 3)))
        else:
            topic = " ".join(fake.words(2))
            turns = (f"Write a short note about {topic}.",
                     f"Sure, here is a short note about {topic}: {fake.sentence(nb_words=6)}")
        records.append({"messages": [{"role": "user", "content": turns[0]},
                                     {"role": "assistant", "content": turns[1]}]})
    return records
