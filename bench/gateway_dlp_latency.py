"""What the gateway's prompt policy costs per request: DLP detection with and without NER, the injection
scorer, and the whole `Policy.check_prompt`, on Faker prompts of one to three sentences, in one run.

    .venv/bin/python bench/gateway_dlp_latency.py [--prompts 200] [--seed 1]

Every prompt is distinct (the detector caches repeated texts, which would flatter it); each mode is warmed
on other prompts first. The gateway's whole overhead target is p50 <= 3 ms, p99 <= 15 ms on 2 cores."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.gateway.adapters.dlp import GatewayDetector
from services.gateway.domain.injection import score_injection
from services.gateway.domain.policy import PolicySet
from services.gateway.settings import CONFIG_DIR

PERSONAL = (
    "My e-mail is {email}.", "Call me back on {phone}.", "I'm {name} from {company}.",
    "Refund it to {iban} please.", "Dear {name},", "Ship it to {address}.",
)


def prompts(n: int, seed: int) -> list[str]:
    """Support prompts of 1-3 sentences; about half carry one piece of personal data."""
    rng = random.Random(seed)
    fake = Faker(["en_US", "en_GB"])
    fake.seed_instance(seed)
    out = []
    while len(out) < n:
        parts = [fake.sentence(nb_words=rng.randint(6, 16)) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.5:
            parts.insert(rng.randint(0, len(parts)), rng.choice(PERSONAL).format(
                email=fake.email(), phone=fake.phone_number(), name=fake.name(), company=fake.company(),
                iban=fake.iban(), address=fake.address().replace("\n", ", ")))
        out.append(" ".join(parts))
    return out


def timed(fn: Callable[[str], object], texts: list[str]) -> list[float]:
    out = []
    for text in texts:
        start = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    texts = prompts(args.prompts + 40, args.seed)
    warm, measured = texts[:40], texts[40:]
    policy_set = PolicySet.load(CONFIG_DIR / "policies.yaml")
    policy = policy_set.for_request("acme", "any-model")
    results: dict[str, object] = {"prompts": len(measured), "mean_chars": round(statistics.fmean(map(len, measured)))}
    results["injection_scorer"] = summary(timed(score_injection, measured))
    for ner in (False, True):
        build_start = time.perf_counter()
        detector = GatewayDetector.build(ner=ner)
        build_s = time.perf_counter() - build_start
        label = "ner" if ner else "no_ner"
        # Warm on the first 20, then measure the detector alone and the whole policy on distinct halves, so no
        # measured text was seen before (the detector caches texts).
        timed(lambda t, d=detector: d.detect_many([t]), warm[:20])
        half = len(measured) // 2
        detect = summary(timed(lambda t, d=detector: d.detect_many([t]), measured[:half]))
        timed(lambda t, d=detector: policy.check_prompt([t], d), warm[20:])
        whole = summary(timed(lambda t, d=detector: policy.check_prompt([t], d), measured[half:]))
        results[label] = {"build_s": round(build_s, 2), "detect": detect, "check_prompt": whole}
    no_ner, ner_ = results["no_ner"], results["ner"]
    assert isinstance(no_ner, dict) and isinstance(ner_, dict)
    results["ner_cost_p50_ms"] = round(ner_["check_prompt"]["p50_ms"] - no_ner["check_prompt"]["p50_ms"], 3)
    base_p50 = max(no_ner["check_prompt"]["p50_ms"], 1e-9)
    results["ner_cost_ratio_p50"] = round(ner_["check_prompt"]["p50_ms"] / base_p50, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
