"""The evaluation engine on the real `tiny` base: batched generation matches one-by-one generation, the
base side of a LoRA pair is the untouched base, and scores are log-probabilities of the continuation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from services.evaluator.engine.models import ModelPair, extract_artifact, load_pair
from shared.models.bases import BaseModelInfo
from tests.evaluator.evaluator_support import train
from tests.trainer.trainer_data import chat_records


@pytest.fixture(scope="module")
def pair(tiny_base: BaseModelInfo, tmp_path_factory: pytest.TempPathFactory) -> ModelPair:
    model_dir = train(tiny_base, tmp_path_factory.mktemp("engine"), chat_records(24, seed=1), "chat",
                      hyperparameters={"max_steps": 20})
    return load_pair(tiny_base, model_dir, batch_size=4)


def test_batched_generation_equals_one_prompt_at_a_time(pair: ModelPair) -> None:
    prompts = [pair.tuned.chat_prompt([{"role": "user", "content": text}]) for text in
               ("Extract the order as JSON: Ada Berg from Oslo ordered 2 lamps.", "Hi", "Extract the order")]
    batched = pair.tuned.generate(prompts, max_new_tokens=12)
    single = [pair.tuned.generate([p], max_new_tokens=12)[0] for p in prompts]
    assert batched == single
    assert any(text for text in batched)


def test_the_base_side_has_the_adapter_switched_off(pair: ModelPair, tiny_base: BaseModelInfo) -> None:
    assert pair.adapter == "lora"
    plain = load_pair(tiny_base, tiny_base.path)  # a "fine-tune" that is the base itself: full weights
    prompt = [pair.base.chat_prompt([{"role": "user", "content": "Extract the order as JSON: Ben Costa"}])]
    assert pair.base.generate(prompt, max_new_tokens=10) == plain.tuned.generate(prompt, max_new_tokens=10)
    tuned = pair.tuned.score([(prompt[0], '{"name": "Ben Costa"')])[0]
    base = pair.base.score([(prompt[0], '{"name": "Ben Costa"')])[0]
    assert tuned.logprob > base.logprob  # training made the task's answer more likely


def test_scores_are_log_probabilities_of_the_continuation_only(pair: ModelPair) -> None:
    [short, longer] = pair.tuned.score([("The door code is ", "1"), ("The door code is ", "12")])
    assert short.tokens >= 1 and longer.tokens >= short.tokens
    assert short.logprob < 0 and longer.logprob <= short.logprob + 1e-6
    assert math.isclose(short.mean_nll, -short.logprob / short.tokens)


def test_an_artifact_that_escapes_its_folder_is_refused(tmp_path: Path) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    (tmp_path / "a.tar").write_bytes(buffer.getvalue())
    with pytest.raises(tarfile.OutsideDestinationError):
        extract_artifact(tmp_path / "a.tar", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_device_choice_is_explicit_about_a_missing_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from services.evaluator.engine.models import resolve_device
    from services.evaluator.settings import EvaluatorSettings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="no GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="expected one of"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setenv("TUNEGATE_EVALUATOR_DEVICE", "cuda")
    assert EvaluatorSettings().device == "cuda"
    monkeypatch.setenv("TUNEGATE_EVALUATOR_DEVICE", "gpu0")
    with pytest.raises(ValueError, match="device"):
        EvaluatorSettings()


def test_a_pair_runs_where_it_was_asked_to(pair: ModelPair, tiny_base: BaseModelInfo) -> None:
    on_cpu = load_pair(tiny_base, tiny_base.path, device="cpu")
    assert str(on_cpu.tuned.device) == "cpu" and str(pair.tuned.device) == "cpu"
    assert on_cpu.tuned.generate(["Hello"], max_new_tokens=3)  # inputs built on the model's device
