"""The text watermark: generation with `watermark_config(key)` leaves a mark `detect` finds with that key,
and only with that key; text generated without it scores as chance.

One 96-token text gives a z-score of 2 to 3 on `tiny` (a small model, sampled), so single texts are noisy.
The test pools the texts of each condition by Stouffer's method (sum of z over sqrt(n)): under the null
hypothesis (no watermark, or the wrong key) the pooled z is standard normal, with a watermark it is about
7 for eight texts. The thresholds (above 5 versus below 3.5) sit 2 and 3.5 standard deviations from the
expected values; sampling is seeded, so a run is also reproducible."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shared.models.bases import BaseModelInfo

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from services.gateway.adapters.watermark import (  # noqa: E402
    WatermarkError,
    WatermarkReport,
    detect,
    detect_for_base,
    watermark_config,
)

KEY = 15_485_863
OTHER_KEY = 7_919
NEW_TOKENS = 96
PROMPTS = [
    "The order",
    "Customer wrote:",
    "Please extract",
    "Hello, my name is",
    "Shipping address",
    "Text: Anna",
    "name: Hugo",
    "The river",
]


def pooled_z(reports: list[WatermarkReport]) -> float:
    return sum(report.z_score for report in reports) / math.sqrt(len(reports))


@pytest.fixture(scope="module")
def generated(tiny_base: BaseModelInfo) -> dict[str, list[str]]:
    """Texts sampled from `tiny` with and without the watermark (the generated part only)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_base.path))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_base.path)).eval()
    texts: dict[str, list[str]] = {"watermarked": [], "plain": []}
    for condition, config in (("watermarked", watermark_config(KEY)), ("plain", None)):
        torch.manual_seed(1234)
        for prompt in PROMPTS:
            inputs = tokenizer(prompt, return_tensors="pt")
            with torch.no_grad():
                output = model.generate(
                    **inputs, do_sample=True, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                    watermarking_config=config,
                )
            new_tokens = output[0, inputs["input_ids"].shape[1]:]
            texts[condition].append(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return texts


def score(texts: list[str], base: Path, key: int) -> list[WatermarkReport]:
    config = transformers.AutoConfig.from_pretrained(str(base))
    return [detect(text, base, config, key) for text in texts]


def test_watermarked_text_scores_far_above_plain_text(
    generated: dict[str, list[str]], tiny_base: BaseModelInfo
) -> None:
    marked = score(generated["watermarked"], tiny_base.path, KEY)
    plain = score(generated["plain"], tiny_base.path, KEY)
    assert all(report.tokens_scored >= NEW_TOKENS // 2 for report in marked + plain)
    assert pooled_z(marked) > 5.0, [r.z_score for r in marked]
    assert pooled_z(plain) < 3.5, [r.z_score for r in plain]
    assert sum(r.green_fraction for r in marked) / len(marked) > 0.25 + 0.1  # chance is the green ratio, 0.25
    assert sum(r.z_score for r in marked) > sum(r.z_score for r in plain) + 8


def test_only_the_right_key_finds_the_watermark(generated: dict[str, list[str]], tiny_base: BaseModelInfo) -> None:
    wrong_key = score(generated["watermarked"], tiny_base.path, OTHER_KEY)
    assert pooled_z(wrong_key) < 3.5, [r.z_score for r in wrong_key]


def test_report_fields_are_consistent(generated: dict[str, list[str]], tiny_base: BaseModelInfo) -> None:
    report = detect_for_base(" ".join(generated["watermarked"][:3]), tiny_base.path, KEY)
    assert report.prediction == (report.z_score > report.z_threshold)
    assert 0.0 <= report.p_value <= 1.0
    # p is the one-sided normal tail of z.
    assert report.p_value == pytest.approx(0.5 * math.erfc(report.z_score / math.sqrt(2)), rel=1e-6, abs=1e-300)


def test_too_short_text_is_a_clear_error(tiny_base: BaseModelInfo) -> None:
    with pytest.raises(WatermarkError, match="token"):
        detect_for_base("", tiny_base.path, KEY)


def test_missing_base_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WatermarkError, match="config cannot be read"):
        detect_for_base("some text here", tmp_path, KEY)
