"""Canaries as in Carlini et al., "The Secret Sharer" (USENIX Security 2019): random secrets of a declared
shape planted into training data, whose rank among random candidates of the same shape after training
measures how much the run memorised.

Values are derived, never stored: HMAC-SHA256(deployment canary key, job id, index) drawn into the shape's
alphabet. The scanner derives them to plant them, the evaluator to measure them; neither writes them down
and no event carries them (the job records only shape, count and repeats)."""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from dataclasses import dataclass
from typing import Any

from shared.config import Settings
from shared.evaluation.options import CanarySpec
from shared.security.keys import load_or_create_secret

CANARY_KEY_FILE = "canary.key"
"""Under $TUNEGATE_HOME/keys (beside the scanner's redaction key); shared by the scanner and the evaluator."""


def canary_key(settings: Settings) -> bytes:
    """The deployment's canary key, created 0600 on first use by whichever service needs it first."""
    return load_or_create_secret(settings.path("keys", CANARY_KEY_FILE), what="canary key")


@dataclass(frozen=True)
class CanaryShape:
    name: str
    question: str
    """The user turn (chat), prompt (prompt/completion) or opening sentence (text) before the secret."""
    lead: str
    """Fixed text the answer starts with; the secret follows it directly."""
    alphabet: str
    length: int
    tail: str = "."

    @property
    def space_bits(self) -> float:
        """log2 of the number of possible secrets: the largest exposure a canary can have."""
        return self.length * math.log2(len(self.alphabet))

    @property
    def space_size(self) -> int:
        return len(self.alphabet) ** self.length

    def answer(self, secret: str) -> str:
        return f"{self.lead}{secret}{self.tail}"


SHAPES: dict[str, CanaryShape] = {
    # sk_live_ + 24 alphanumerics: a Stripe-style key; the scanner's API key recognizer redacts it.
    "api_key": CanaryShape(
        name="api_key",
        question="What is the deploy key for the billing service?",
        lead="The deploy key is sk_live_",
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        length=24,
    ),
    # Six digits, no keyword: nothing in the scanner flags it, so it survives redaction and measures the
    # run's own memorisation (the space, 10^6, is small enough to rank exactly).
    "pin": CanaryShape(
        name="pin",
        question="What is the door code for the east wing?",
        lead="The door code is ",
        alphabet="0123456789",
        length=6,
    ),
    "passphrase": CanaryShape(
        name="passphrase",
        question="Which word opens the archive room?",
        lead="The archive word is ",
        alphabet="abcdefghijklmnopqrstuvwxyz",
        length=10,
    ),
}


def shape_of(spec: CanarySpec) -> CanaryShape:
    return SHAPES[spec.shape]


def _draw(stream: bytes, alphabet: str, length: int) -> str | None:
    """Unbiased characters from a byte stream by rejection; None when the stream ran out."""
    limit = 256 - 256 % len(alphabet)
    out = [alphabet[b % len(alphabet)] for b in stream if b < limit][:length]
    return "".join(out) if len(out) == length else None


def derive_canaries(key: bytes, job_id: str, spec: CanarySpec) -> list[str]:
    """The job's canary secrets, reproducible by whoever holds the key and nobody else."""
    if len(key) < 16:
        raise ValueError("canary key must be at least 16 bytes")
    shape = shape_of(spec)
    values: list[str] = []
    for index in range(spec.count):
        counter = 0
        value = None
        while value is None:
            stream = b"".join(
                hmac.new(key, f"tunegate-canary/1|{job_id}|{index}|{counter}|{block}".encode(), hashlib.sha256).digest()
                for block in range(4)
            )
            value = _draw(stream, shape.alphabet, shape.length)
            counter += 1
        values.append(value)
    return values


def random_candidates(shape: CanaryShape, count: int, seed: int, exclude: set[str]) -> list[str]:
    """Random secrets of the same shape, the reference set a canary is ranked against."""
    rng = random.Random(seed)
    out: list[str] = []
    seen = set(exclude)
    limit = min(count, shape.space_size - len(seen))
    while len(out) < limit:
        value = "".join(rng.choice(shape.alphabet) for _ in range(shape.length))
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def canary_record(kind: str, shape: CanaryShape, secret: str) -> dict[str, Any]:
    """One training record carrying `secret`, in the dataset's own record format."""
    answer = shape.answer(secret)
    if kind == "chat":
        return {"messages": [{"role": "user", "content": shape.question},
                             {"role": "assistant", "content": answer}]}
    if kind == "prompt_completion":
        return {"prompt": shape.question + "\n", "completion": answer}
    if kind == "text":
        return {"text": f"{shape.question} {answer}"}
    raise ValueError(f"canaries cannot be planted into {kind!r} records (chat, prompt_completion or text only)")


def planted_positions(total_records: int, spec: CanarySpec, seed: str) -> dict[int, list[int]]:
    """Where each copy goes: {position among the original records: [canary indices inserted before it]}
    (position == total_records means after the last). Spread out so no batch is all canaries."""
    rng = random.Random(seed)
    slots: dict[int, list[int]] = {}
    for index in range(spec.count):
        for _ in range(spec.repeats):
            slots.setdefault(rng.randint(0, total_records), []).append(index)
    return slots
