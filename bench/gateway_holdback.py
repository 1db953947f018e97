"""The latency cost of the streaming holdback window (response DLP that never emits part of an entity), holdback
on and off, in one run.

    .venv/bin/python bench/gateway_holdback.py [--responses 60] [--tokens-per-s 50] [--seed 3] [--ner]

Responses are Faker text of a few sentences with e-mails, phone numbers, IBANs, card numbers and names in
them; each is cut into BPE-sized pseudo-tokens (up to four characters with their leading space) and fed to
`Policy.response_stream` one token at a time, as a model streams. A simulated model emits a token every
1/tokens-per-s seconds; the filter's own compute time per token is measured on this machine and added where
it is spent. Per mode:

- time to first emitted character: from the first token's arrival to the first character leaving;
- delay per emitted character: from the character's arrival to its emission, in tokens, in characters (of
  later text that arrived before it left) and in ms;
- the filter's compute per token (ms), which must stay below the token interval for no queueing.

"off" is a pass-through (every token emitted as it arrives, no response DLP): the baseline."""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.gateway.adapters.dlp import GatewayDetector
from services.gateway.domain.policy import Policy, PolicySet
from services.gateway.settings import CONFIG_DIR

TOKEN = re.compile(r"\s?[^\s]{1,4}|\s+")
ENTITY_SENTENCES = (
    "You can reach {name} at {email}.", "Her direct line is {phone}.", "The refund goes to {iban}.",
    "The card on file is {card}.", "Dear {name}, thank you for waiting.",
)


def responses(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    fake = Faker(["en_US", "en_GB"])
    fake.seed_instance(seed)
    out = []
    for _ in range(n):
        parts = [fake.sentence(nb_words=rng.randint(6, 16)) for _ in range(rng.randint(3, 6))]
        for _ in range(rng.randint(1, 3)):
            parts.insert(rng.randint(0, len(parts)), rng.choice(ENTITY_SENTENCES).format(
                name=fake.name(), email=fake.email(), phone=fake.phone_number(), iban=fake.iban(),
                card=fake.credit_card_number()))
        out.append(" ".join(parts))
    return out


def run_one(text: str, policy: Policy | None, detector: GatewayDetector | None, holdback: int,
            interval_ms: float) -> dict[str, float]:
    tokens = TOKEN.findall(text)
    assert "".join(tokens) == text
    starts, pos = [], 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok)
    stream = policy.response_stream(detector, holdback) if policy is not None and detector is not None else None
    released_after: list[int] = []  # raw chars released after feed i
    compute_ms: list[float] = []
    arrived = 0
    for tok in tokens:
        begin = time.perf_counter()
        if stream is not None:
            stream.feed(tok)
        compute_ms.append((time.perf_counter() - begin) * 1000)
        arrived += len(tok)
        released_after.append(stream.released_chars if stream is not None else arrived)
    if stream is not None:
        begin = time.perf_counter()
        stream.finish()
        compute_ms[-1] += (time.perf_counter() - begin) * 1000
        released_after[-1] = len(text)
    # Emission time of feed i: arrival of token i plus the filter's compute for it.
    emitted_at = [i * interval_ms + compute_ms[i] for i in range(len(tokens))]
    delays_tok, delays_chars, delays_ms = [], [], []
    feed = 0
    token_of_char = 0
    for p in range(len(text)):
        while token_of_char + 1 < len(tokens) and starts[token_of_char + 1] <= p:
            token_of_char += 1
        while released_after[feed] <= p:
            feed += 1
        delays_tok.append(feed - token_of_char)
        # Characters of later text that arrived before this one left (0 for a pass-through).
        delays_chars.append(starts[feed] + len(tokens[feed]) - (starts[token_of_char] + len(tokens[token_of_char])))
        delays_ms.append(emitted_at[feed] - token_of_char * interval_ms)
    first = next(i for i, r in enumerate(released_after) if r > 0)
    return {
        "ttfc_tokens": first, "ttfc_ms": emitted_at[first],
        "delay_tokens": statistics.fmean(delays_tok), "delay_chars": statistics.fmean(delays_chars),
        "delay_ms": statistics.fmean(delays_ms), "delay_ms_max": max(delays_ms),
        "compute": compute_ms,
    }


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    compute = sorted(c for r in rows for c in r["compute"])  # type: ignore[union-attr]
    mean = lambda key: round(statistics.fmean(r[key] for r in rows), 2)  # noqa: E731
    return {
        "ttfc_tokens": mean("ttfc_tokens"), "ttfc_ms": mean("ttfc_ms"),
        "delay_tokens_per_char": mean("delay_tokens"), "delay_chars_per_char": mean("delay_chars"),
        "delay_ms_per_char": mean("delay_ms"), "delay_ms_worst": round(max(r["delay_ms_max"] for r in rows), 1),
        "compute_ms_per_token_p50": round(statistics.median(compute), 3),
        "compute_ms_per_token_p99": round(compute[int(len(compute) * 0.99)], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=60)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--holdbacks", default="16,32,64,128")
    parser.add_argument("--ner", action="store_true", help="also run the default window with NER on")
    args = parser.parse_args()
    interval = 1000.0 / args.tokens_per_s
    texts = responses(args.responses, args.seed)
    policy = PolicySet.load(CONFIG_DIR / "policies.yaml").for_request("acme", "any-model")
    plain = GatewayDetector.build(ner=False)
    modes: list[tuple[str, GatewayDetector | None, int]] = [("off", None, 0)]
    modes += [(f"holdback_{h}", plain, h) for h in map(int, args.holdbacks.split(","))]
    if args.ner:
        modes.append(("holdback_64_ner", GatewayDetector.build(ner=True), 64))
    tokens = [len(TOKEN.findall(t)) for t in texts]
    report: dict[str, object] = {
        "responses": len(texts), "mean_chars": round(statistics.fmean(map(len, texts))),
        "mean_tokens": round(statistics.fmean(tokens), 1), "tokens_per_s": args.tokens_per_s,
    }
    for name, detector, holdback in modes:
        rows = [run_one(t, policy if detector else None, detector, holdback, interval) for t in texts]
        report[name] = summarise(rows)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
