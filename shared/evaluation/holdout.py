"""The held-out split: which records the trainer kept out of training, so the evaluator measures task
quality on data the model never saw. The trainer chooses and records it; the evaluator reads the record."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.json_input import parse_json

HOLDOUT_SCHEMA = "tunegate.holdout/1"
MIN_TRAINING_RECORDS = 1


class HeldOut(BaseModel):
    """Stored as an artefact; its reference and sha256 travel in training.completed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: str = Field(default=HOLDOUT_SCHEMA, alias="schema")
    job_id: str
    record_count: int = Field(ge=0)
    data_fingerprint: str
    seed: int
    fraction: float
    indices: list[int]

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> HeldOut:
        return cls.model_validate(parse_json(data))


def choose_held_out(record_count: int, fraction: float, seed: int) -> list[int]:
    """Indices to hold out: floor(fraction * n), at least one when the fraction is positive and enough
    records remain to train on, deterministic in the seed so a resumed run holds out the same records."""
    if fraction <= 0 or record_count <= MIN_TRAINING_RECORDS:
        return []
    size = min(max(1, math.floor(record_count * fraction)), record_count - MIN_TRAINING_RECORDS)
    return sorted(random.Random(f"holdout|{seed}|{record_count}").sample(range(record_count), size))


def split(records: list[dict[str, Any]], held_out: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, held-out records), both in their original order."""
    keep = set(held_out)
    return ([r for i, r in enumerate(records) if i not in keep], [records[i] for i in held_out])
