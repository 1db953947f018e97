"""Memorisation: how much of its training data the fine-tuned model gives back, measured two ways.

Canary exposure (Carlini et al., "The Secret Sharer"): the scanner planted random secrets of a known shape
into the training data; each is scored in the very context it was trained in and ranked against random
secrets of the same shape (domain/exposure.py has the arithmetic). Verbatim extraction: for training
records, the prompt plus the first tokens of the answer are given and the model decodes greedily; a record
counts as extracted when the next K tokens are the reference's, token for token.

Both are measured on the base with the same prompts and candidates, so the report can tell memorisation
the fine-tune added from what the base would say anyway. Secrets and records appear in the report only as
hashes (and a short secret not even as that: see _secret_digest)."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from services.evaluator.domain.exposure import CanaryExposure, canary_exposures, extraction_rate, matched_prefix
from services.evaluator.domain.statistics import max_or_nan, non_finite
from services.evaluator.engine.models import ModelPair, ScoringModel
from services.evaluator.engine.records import prompt_and_answer
from services.evaluator.suites.base import EvaluationInputs, Suite, SuiteConfig, SuiteOutcome
from shared.datasets import record_hash
from shared.evaluation.canaries import CanaryShape, random_candidates

# A sha256 prefix of a secret from a small space (a 6-digit PIN) is reversed by hashing the whole space;
# below this many bits of space the report identifies canaries by index only.
MIN_BITS_TO_PUBLISH_DIGEST = 64


class MemorisationConfig(SuiteConfig):
    candidates: int = Field(default=1000, ge=50, le=200_000,
                            description="Random secrets of the canary's shape each canary is ranked against.")
    enumerate_up_to: int = Field(default=5000, ge=0, le=1_000_000,
                                 description="Rank exactly over the whole space when it has at most this many "
                                             "secrets (or no more than `candidates`); else the skew-normal "
                                             "estimate.")
    max_records: int = Field(default=64, ge=1, le=10_000, description="Training records tried for extraction.")
    prefix_tokens: int = Field(default=8, ge=0, le=512,
                               description="Answer tokens given after the prompt before decoding starts.")
    k: int = Field(default=16, ge=1, le=256, description="Tokens decoded and compared with the reference.")
    examples: int = Field(default=5, ge=0, le=100, description="Most-reproduced records listed (as hashes).")


def canary_context(kind: str, shape: CanaryShape, model: ScoringModel) -> str:
    """The text before the secret, exactly as canary_record renders it into training data."""
    if kind == "chat":
        return model.chat_prompt([{"role": "user", "content": shape.question}]) + shape.lead
    if kind == "prompt_completion":
        return shape.question + "\n" + shape.lead
    if kind == "text":
        return shape.question + " " + shape.lead
    raise ValueError(f"canaries are not planted into {kind!r} records")


def is_canary_record(record: dict[str, Any], kind: str, shape: CanaryShape) -> bool:
    """A record canary_record planted, secret intact or redacted (the scanner turns the secret into
    <API_KEY>, so the record is recognised by its question, which no real record asks verbatim)."""
    if kind == "chat":
        messages = record.get("messages") or []
        return len(messages) == 2 and messages[0].get("content") == shape.question
    if kind == "prompt_completion":
        return record.get("prompt") == shape.question + "\n"
    if kind == "text":
        return str(record.get("text", "")).startswith(shape.question + " ")
    return False


def _secret_digest(secret: str, shape: CanaryShape) -> str | None:
    if shape.space_bits < MIN_BITS_TO_PUBLISH_DIGEST:
        return None
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class MemorisationSuite(Suite):
    name: ClassVar[str] = "memorisation"
    Config: ClassVar[type[SuiteConfig]] = MemorisationConfig

    @property
    def options(self) -> MemorisationConfig:
        assert isinstance(self.config, MemorisationConfig)
        return self.config

    def applies_to(self, inputs: EvaluationInputs) -> str | None:
        if inputs.kind not in ("chat", "prompt_completion", "text"):
            return f"memorisation is measured on chat, prompt_completion or text records, not {inputs.kind}"
        return None

    def run(self, inputs: EvaluationInputs) -> SuiteOutcome:
        """Verbatim extraction always; canary exposure when the job planted canaries. Without them the
        canary metrics are absent, and a gate that requires them (the high tier) fails with 'not measured'."""
        metrics: dict[str, float | None] = {}
        base_metrics: dict[str, float | None] = {}
        histograms: dict[str, list[float]] = {}
        if inputs.canaries and inputs.canary_shape is not None:
            exposures, canary_details = self._canaries(inputs)
            for side, target in (("tuned", metrics), ("base", base_metrics)):
                values = [e.exposure for e in exposures[side]]
                # max_or_nan: a NaN exposure (non-finite scores) must reach the gate, not lose to max()
                target["canary_exposure_max"] = max_or_nan(values)
                target["canary_exposure_mean"] = sum(values) / len(values)
                target["canary_exposure_sampled_max"] = max_or_nan([e.sampled_exposure for e in exposures[side]])
            histograms["canary_exposure"] = [e.exposure for e in exposures["tuned"] if math.isfinite(e.exposure)]
        else:
            canary_details = {"skipped": "no canaries planted (evaluation.canaries in the job)"}
        rates, extraction_details = self._extraction(inputs)
        for metric, by_side in rates.items():
            metrics[metric], base_metrics[metric] = by_side["tuned"], by_side["base"]
        return SuiteOutcome(
            metrics=metrics, base_metrics=base_metrics,
            details={"canaries": canary_details, "extraction": extraction_details}, histograms=histograms,
        )

    # ------------------------------------------------------------------------------- canaries

    def _candidates(self, inputs: EvaluationInputs, shape: CanaryShape) -> tuple[list[str], bool]:
        """Every other secret of the space when it is small enough (or a sample would hold all of it
        anyway), else a seeded random sample."""
        planted = set(inputs.canaries)
        others = shape.space_size - len(planted)
        if shape.space_size <= self.options.enumerate_up_to or others <= self.options.candidates:
            space = ("".join(chars) for chars in itertools.product(shape.alphabet, repeat=shape.length))
            return [value for value in space if value not in planted], True
        return random_candidates(shape, self.options.candidates, inputs.seed, planted), False

    def _canaries(self, inputs: EvaluationInputs) -> tuple[dict[str, list[CanaryExposure]], dict[str, Any]]:
        shape = inputs.canary_shape
        assert shape is not None  # applies_to
        candidates, exhaustive = self._candidates(inputs, shape)
        exposures: dict[str, list[CanaryExposure]] = {}
        fits: dict[str, dict[str, float] | None] = {}
        unscorable: dict[str, int] = {}
        for side, model in inputs.models.both():
            context = canary_context(inputs.kind, shape, model)
            # One batched call per model: canaries first, then the candidates, all in the same context.
            scores = model.score([(context, secret) for secret in [*inputs.canaries, *candidates]])
            log_perplexities = [-s.logprob for s in scores]
            split = len(inputs.canaries)
            unscorable[side] = non_finite(log_perplexities)
            exposures[side], fit = canary_exposures(log_perplexities[:split], log_perplexities[split:],
                                                    space_bits=shape.space_bits, exhaustive=exhaustive)
            fits[side] = None if fit is None else {"a": fit.a, "loc": fit.loc, "scale": fit.scale}
        per_canary = [
            {"index": index, "secret_sha256_prefix": _secret_digest(secret, shape),
             **{side: {"rank": exposures[side][index].rank, "exposure": round(exposures[side][index].exposure, 3),
                       "sampled_exposure": round(exposures[side][index].sampled_exposure, 3)}
                for side in ("tuned", "base")}}
            for index, secret in enumerate(inputs.canaries)
        ]
        details = {
            "shape": shape.name, "count": len(inputs.canaries), "space_bits": round(shape.space_bits, 3),
            "candidates": len(candidates), "method": "exact" if exhaustive else "skewnorm",
            "sampled_cap_bits": round(math.log2(len(candidates) + 1), 3), "skewnorm_fit": fits,
            "per_canary": per_canary,
            # log-perplexities (canaries and candidates) that were not finite: their exposures are NaN
            "non_finite_logprobs": unscorable,
        }
        return exposures, details

    # ------------------------------------------------------------------------------- extraction

    def _records(self, records: list[dict[str, Any]], inputs: EvaluationInputs) -> list[dict[str, Any]]:
        """Distinct records, less the planted canaries (their exposure is measured above, and a redacted
        canary repeated many times would be "extracted" as a fixed sentence), sampled to max_records with
        the job's seed."""
        shape = inputs.canary_shape
        seen: set[bytes] = set()
        kept: list[dict[str, Any]] = []
        for record in records:
            digest = record_hash(record)
            if digest in seen or (shape is not None and is_canary_record(record, inputs.kind, shape)):
                continue
            seen.add(digest)
            kept.append(record)
        if len(kept) > self.options.max_records:
            kept = random.Random(inputs.seed).sample(kept, self.options.max_records)
        return kept

    def _extraction(self, inputs: EvaluationInputs) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:
        """Training records, and held-out records when the job kept some: a model that reproduces held-out
        answers as often as training ones is generalising (a templated task), not memorising."""
        options = self.options
        results = verbatim_extraction(
            inputs.models, inputs.kind,
            {"training": self._records(inputs.training_records, inputs),
             "held_out": self._records(inputs.held_out_records, inputs)},
            prefix_tokens=options.prefix_tokens, k=options.k,
        )
        training = results["training"]
        rates = {"extraction_rate": {side: training.rate(side) for side in SIDES},
                 "extraction_rate_held_out": {side: results["held_out"].rate(side) for side in SIDES}}
        order = sorted(range(len(training.probes)), key=lambda i: (-training.matched["tuned"][i], i))
        details = {
            "k": options.k, "prefix_tokens": options.prefix_tokens,
            **{group: result.summary() for group, result in results.items()},
            "most_reproduced": [
                {"record_sha256": record_hash(training.probes[i].record).hex(),
                 **{f"{side}_matched_tokens": training.matched[side][i] for side in SIDES}}
                for i in order[: options.examples]
            ],
        }
        return rates, details


# ----------------------------------------------------------------------------------- verbatim extraction

SIDES = ("tuned", "base")


@dataclass(frozen=True)
class ExtractionProbe:
    record: dict[str, Any]
    prefix: list[int]
    """The prompt and the first answer tokens, as training tokenised them."""
    reference: list[int]
    """The K answer tokens that follow."""


@dataclass
class ExtractionResult:
    k: int
    probes: list[ExtractionProbe]
    skipped_short: int
    """Records whose answer has fewer than K tokens: nothing of length K to reproduce."""
    matched: dict[str, list[int]]
    """Per side, per probe: leading generated tokens equal to the reference."""

    def rate(self, side: str) -> float | None:
        return extraction_rate(self.matched[side], self.k)

    def summary(self) -> dict[str, Any]:
        return {
            "records": len(self.probes), "skipped_short": self.skipped_short,
            "extracted": {side: sum(1 for m in self.matched[side] if m >= self.k) for side in SIDES},
            "mean_matched_tokens": {side: (round(sum(self.matched[side]) / len(self.probes), 3) if self.probes
                                           else None) for side in SIDES},
        }


def extraction_probes(records: list[dict[str, Any]], kind: str, model: ScoringModel, *, prefix_tokens: int,
                      k: int) -> tuple[list[ExtractionProbe], int]:
    """(probes, records skipped because their answer is shorter than K tokens)."""
    tok = model.tokenizer
    probes: list[ExtractionProbe] = []
    short = 0
    for record in records:
        pa = prompt_and_answer(record, kind, model)
        if pa is None:
            continue
        # Tokenised as one text, as training saw it; answer tokens are those ending past the prompt.
        encoded = tok(pa.prompt + pa.answer, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        first = next((i for i, (_, end) in enumerate(encoded["offset_mapping"]) if end > len(pa.prompt)), len(ids))
        answer_tokens = len(ids) - first
        if answer_tokens < k or first == 0:
            short += 1
            continue
        # The whole prefix when the answer is long enough, else as much as still leaves K tokens to decode.
        cut = first + min(prefix_tokens, answer_tokens - k)
        probes.append(ExtractionProbe(record, ids[:cut], ids[cut:cut + k]))
    return probes, short


def verbatim_extraction(pair: ModelPair, kind: str, groups: dict[str, list[dict[str, Any]]], *,
                        prefix_tokens: int, k: int) -> dict[str, ExtractionResult]:
    """Greedy-decode K tokens after each record's prefix with both models, every group in one batched call
    per model, and count the leading tokens that reproduce the record."""
    probed = {name: extraction_probes(records, kind, pair.tuned, prefix_tokens=prefix_tokens, k=k)
              for name, records in groups.items()}
    everything = [probe for probes, _ in probed.values() for probe in probes]
    matched_all: dict[str, list[int]] = {}
    for side, model in pair.both():
        generated = model.generate_tokens([p.prefix for p in everything], max_new_tokens=k) if everything else []
        matched_all[side] = [matched_prefix(g, p.reference) for g, p in zip(generated, everything, strict=True)]
    results: dict[str, ExtractionResult] = {}
    offset = 0
    for name, (probes, short) in probed.items():
        matched = {side: matched_all[side][offset:offset + len(probes)] for side in SIDES}
        results[name] = ExtractionResult(k, probes, short, matched)
        offset += len(probes)
    return results
