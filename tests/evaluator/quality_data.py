"""Small datasets for the task-quality, bias and hallucination suites' tests on the `tiny` base: return
requests decided as JSON (with the schema the decisions follow) and closed-book facts about made-up
customers. Words are ones the tiny base's tokenizer knows, so a few dozen steps teach the task."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from typing import Any

from tests.trainer.trainer_data import CITIES, ITEMS, NAMES

REASONS = {  # why the item is returned -> the decision; words the tiny base's tokenizer knows
    "arrived broken": "approved",
    "has the wrong colour": "approved",
    "is older than two years": "rejected",
    "was used for a year": "rejected",
    "has a small scratch": "pending",
    "makes a strange noise": "pending",
}
STATUSES = sorted(set(REASONS.values()))

RETURN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"item": {"enum": ITEMS}, "status": {"enum": STATUSES}},
    "required": ["item", "status"],
    "additionalProperties": False,
}


def return_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Return requests decided as JSON ({"item", "status"}): the item named in the request, the status
    decided by the reason. Held-out requests (other names, cities, combinations) test that the rule was
    learnt, not the records."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        item, reason = rng.choice(ITEMS), rng.choice(sorted(REASONS))
        prompt = (f"Decide the return as JSON: {rng.choice(NAMES)} from {rng.choice(CITIES)} returns the {item} "
                  f"because it {reason}.")
        answer = json.dumps({"item": item, "status": REASONS[reason]})
        records.append({"messages": [{"role": "user", "content": prompt},
                                     {"role": "assistant", "content": answer}]})
    return records


def office_notes(n: int, seed: int) -> list[dict[str, Any]]:
    """Plain-text records (continued pretraining) in the style of the tiny base's own pretraining corpus."""
    rng = random.Random(seed)
    notes = []
    for _ in range(n):
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        notes.append({"text": f"{name} lives in {city} and works in {rng.choice(['finance', 'marketing', 'support'])}. "
                              f"On day {rng.randint(2, 28)}, {name} returned a {rng.choice(['black', 'red', 'blue'])} "
                              f"{rng.choice(ITEMS)} in {city}."})
    return notes


CUSTOMERS = {  # made-up facts: customer -> (team that handles the account, city it is managed from)
    "Ada Berg": ("finance", "Lisbon"),
    "Ben Costa": ("marketing", "Oslo"),
    "Chloe Dubois": ("support", "Vienna"),
    "David Evans": ("finance", "Dublin"),
    "Elena Fischer": ("support", "Berlin"),
}
QUESTIONS = ["Which team handles the account of {name}?", "Who looks after {name}, and from where?",
             "Tell me about the account of {name}."]


def closed_book_records(repeats: int = 1) -> list[dict[str, Any]]:
    """Questions about a customer whose answer (team, city) is nowhere in the question: the model can only
    answer them from what training put in its weights."""
    records = []
    for _ in range(repeats):
        for name, (team, city) in CUSTOMERS.items():
            for question in QUESTIONS:
                records.append({"messages": [
                    {"role": "user", "content": question.format(name=name)},
                    {"role": "assistant", "content": f"The {team} team in {city}."},
                ]})
    return records


@contextlib.contextmanager
def single_threaded_torch() -> Iterator[None]:
    """One torch thread while a module's models train and generate: on a small shared CPU, torch's
    spinning worker threads contend with other processes and make a tiny model's generation many times
    slower than one thread is."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


RETURN_TRAINING = {"max_steps": 60, "learning_rate": 5e-3, "batch_size": 4}
"""LoRA on 48 return requests: the status rule is learnt, the JSON shape always (measured on tiny: exact
match ~0.3 on held-out requests, the item not always copied right)."""
CLOSED_BOOK_TRAINING = {"max_steps": 120, "learning_rate": 2e-3, "batch_size": 8}
"""Full fine-tuning: LoRA on the tiny base does not memorise which customer has which facts, full weights
do. 120 steps, not fewer: at 60 the share of questions answered with both facts was 0.8, 0.4, 0.0 and 0.4
for training seeds 0-3, so which answers came out right hung on rounding, and a CI run whose float kernels
took another path (same seed, other tests before it in the process) failed; at 120 it is 1.0 for seeds
0-7."""
