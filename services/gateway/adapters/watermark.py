"""Statistical text watermark (Kirchenbauer et al. 2023) for locally served models: the generation config
that plants it and the detector that measures it, both from transformers.

How it works: at each step the previous token (with the hashing key) seeds a split of the vocabulary into
a "green" quarter and the rest, and green tokens get +2.0 on their logits. Text from the watermarked model
then holds many more green tokens than the 25% chance predicts; the detector recounts them and reports a
z-score (standard deviations above chance) and its one-sided p-value. Only someone holding the key (and the
base's tokenizer and vocabulary size) can run the count.

What weakens it: short texts (too few tokens for a confident z), redaction or edits (each changed token
costs its green hit), and re-tokenisation: the detector encodes the text again, which may split it
differently from how it was generated. Low-entropy text (the model is sure of each token) carries little
watermark because the bias cannot flip the choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig, WatermarkingConfig

# The defaults of transformers' WatermarkingConfig, named here so the generator and the detector agree.
GREENLIST_RATIO = 0.25
BIAS = 2.0
SEEDING_SCHEME = "lefthash"
CONTEXT_WIDTH = 1
Z_THRESHOLD = 4.0  # the paper's threshold: a false positive rate of about 3e-5 on human text


class WatermarkError(ValueError):
    """A text or base the detector cannot score; the message says why."""


@dataclass(frozen=True)
class WatermarkReport:
    z_score: float
    p_value: float
    prediction: bool  # z_score above the threshold: the text carries the watermark
    tokens_scored: int
    green_fraction: float
    z_threshold: float = Z_THRESHOLD


def watermark_config(key: int) -> WatermarkingConfig:
    """The config passed to `model.generate(watermarking_config=...)` for a watermarked deployment."""
    from transformers import WatermarkingConfig

    return WatermarkingConfig(
        greenlist_ratio=GREENLIST_RATIO,
        bias=BIAS,
        hashing_key=key,
        seeding_scheme=SEEDING_SCHEME,
        context_width=CONTEXT_WIDTH,
    )


def detect(
    text: str,
    tokenizer_dir: Path,
    model_config: PretrainedConfig,
    key: int,
    *,
    z_threshold: float = Z_THRESHOLD,
) -> WatermarkReport:
    """Score `text` (the generated part only: a prompt in front dilutes the count) for the watermark planted
    with `key` by a model with `model_config` whose tokenizer is in `tokenizer_dir`."""
    import torch
    from transformers import AutoTokenizer, WatermarkDetector

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # The detector drops a leading BOS and needs one token of context before the first scored token.
    if ids and ids[0] == model_config.bos_token_id:
        ids = ids[1:]
    if len(ids) <= CONTEXT_WIDTH:
        raise WatermarkError(
            f"text has {len(ids)} token(s); at least {CONTEXT_WIDTH + 1} are needed to score one"
        )
    # Each distinct (previous token, token) pair counts once: templated text repeats pairs, and counting
    # every repeat would inflate z on text that was never watermarked (tokens_scored is the distinct pairs).
    detector = WatermarkDetector(
        model_config=model_config, device="cpu", watermarking_config=watermark_config(key), ignore_repeated_ngrams=True
    )
    result = detector(torch.tensor([ids], dtype=torch.long), z_threshold=z_threshold, return_dict=True)
    return WatermarkReport(
        z_score=float(result.z_score[0]),
        p_value=float(result.p_value[0]),
        prediction=bool(result.prediction[0]),
        tokens_scored=int(result.num_tokens_scored[0]),
        green_fraction=float(result.green_fraction[0]),
        z_threshold=z_threshold,
    )


def detect_for_base(text: str, base_dir: Path, key: int, *, z_threshold: float = Z_THRESHOLD) -> WatermarkReport:
    """`detect` with the tokenizer and config of a base model directory (shared/models/bases.py)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(base_dir))
    except (OSError, ValueError) as exc:
        raise WatermarkError(f"base model {base_dir}: its config cannot be read: {exc}") from None
    return detect(text, base_dir, config, key, z_threshold=z_threshold)
