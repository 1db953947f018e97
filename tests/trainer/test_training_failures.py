"""Training that goes wrong ends in exactly one training.failed with a reason, never in a redelivery loop, a
NaN model shipped as completed, or a metric the wire cannot carry: an unexpected exception from any library, a
run diverged to NaN/inf, and a DP run whose noise buys no meaningful privacy. Outages and failed publishes
still escape, so the bus retries the entry."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import redis
import torch
from safetensors.torch import save_file
from sqlalchemy import select

from services.trainer.adapters.tables import trainer_jobs
from services.trainer.domain.progress import PrivacyGuaranteeVoid, TrainingDiverged
from services.trainer.engine import dp_sgd
from services.trainer.engine.loop import run_training
from services.trainer.engine.plain import common_args
from services.trainer.engine.run import (
    TrainedModel,
    TrainingJob,
    TrainingRun,
    check_weights_finite,
    finite_metrics,
)
from services.trainer.handlers import REASON_CHARS
from shared.datasets.loaded import load_dataset
from shared.events.envelope import Envelope
from shared.events.payloads import MethodSpec
from shared.ids import new_job_id
from shared.models.bases import BaseModelInfo
from shared.training.hyperparameters import HyperParameters, validate_hyperparameters
from tests.trainer.test_handlers import Harness, build_harness, stored_dataset
from tests.trainer.test_training import Recorder, make_job
from tests.trainer.trainer_data import chat_records, write_jsonl


@pytest.fixture
def harness(tmp_path: Path, redis_url: str, tiny_base: BaseModelInfo) -> Harness:
    return build_harness(tmp_path, redis_url, tiny_base)


def save_adapter(tensors: dict[str, torch.Tensor]) -> Any:
    def save(directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "adapter_config.json").write_text("{}")
        save_file(tensors, str(directory / "adapter_model.safetensors"))

    return save


class FakeStrategy:
    """Stands in for a trainer: logs the given losses, then raises `error` or returns a model saved by `save`."""

    def __init__(self, *, error: BaseException | None = None, losses: tuple[float, ...] = (2.0,),
                 metrics: dict[str, float] | None = None, save: Any = None, epsilon: float | None = None) -> None:
        self.error, self.losses, self.epsilon = error, losses, epsilon
        self.metrics = metrics if metrics is not None else {"steps": 1.0, "records": 15.0}
        self.save = save or save_adapter({"lora_A": torch.ones(2, 2), "lora_B": torch.zeros(2, 2)})

    def train(self, run: TrainingRun) -> TrainedModel:
        run.begin(0)
        for step, loss in enumerate(self.losses, start=1):
            run.logged(step, loss, 10 * step, learning_rate=1e-3)
        if self.error is not None:
            raise self.error
        return TrainedModel(save=self.save, metrics=dict(self.metrics), resumed_from_step=0, epsilon=self.epsilon)


def use_strategy(monkeypatch: pytest.MonkeyPatch, strategy: FakeStrategy) -> None:
    monkeypatch.setattr("services.trainer.engine.loop.strategy_for", lambda method, workers=1: strategy)


def outcome_rows(harness: Harness) -> list[Any]:
    with harness.db.transaction() as session:
        return list(session.execute(select(trainer_jobs)).all())


# ------------------------------------------------------------------------------------- unexpected exceptions


@pytest.mark.parametrize("error, reason", [
    (ZeroDivisionError("float division by zero"), "training error: ZeroDivisionError: float division by zero"),
    (AttributeError("'str' object has no attribute 'get'"),
     "training error: AttributeError: 'str' object has no attribute 'get'"),
    (TypeError("can only concatenate list (not \"str\") to list"),
     "training error: TypeError: can only concatenate list (not \"str\") to list"),
    (KeyError("messages"), "training error: KeyError: 'messages'"),
    (AssertionError(), "training error: AssertionError"),
])
def test_any_exception_from_training_fails_the_job_once(harness: Harness, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         error: BaseException, reason: str) -> None:
    use_strategy(monkeypatch, FakeStrategy(error=error))
    job_id = new_job_id()
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert failed.type == "training.failed"
    assert failed.data.reason == reason and failed.data.step == 1
    [row] = outcome_rows(harness)
    assert (row.job_id, row.outcome) == (job_id, "failed")
    # The redelivery finds the recorded outcome: the job is not trained again.
    assert harness.deliver(harness.request(job_id, dataset, fingerprint)) == []


def test_a_long_exception_message_is_cut(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, FakeStrategy(error=ValueError("x" * 50_000)))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint))
    assert failed.data.reason.startswith("training error: ValueError: xxx")
    assert len(failed.data.reason) == REASON_CHARS


def test_an_outage_or_a_failed_publish_escapes_for_the_bus_to_retry(harness: Harness, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    use_strategy(monkeypatch, FakeStrategy(error=redis.exceptions.ConnectionError("Redis went away")))
    with pytest.raises(redis.exceptions.ConnectionError):
        harness.deliver(harness.request(new_job_id(), dataset, fingerprint))

    async def refuse_progress(env: Envelope) -> None:
        if env.type == "training.progress":
            raise ValueError("the bus refused the entry")

    use_strategy(monkeypatch, FakeStrategy())
    harness.on_publish = refuse_progress
    with pytest.raises(ValueError, match="the bus refused"):
        harness.deliver(harness.request(new_job_id(), dataset, fingerprint))
    assert outcome_rows(harness) == []


def test_an_unexpected_error_while_preparing_fails_the_job(harness: Harness, tmp_path: Path) -> None:
    def broken_base(name: str) -> BaseModelInfo:
        raise AttributeError("'NoneType' object has no attribute 'read'")

    harness.handlers.deps.resolve_base = broken_base
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint))
    assert failed.type == "training.failed"
    assert failed.data.reason == "preparing the run failed: AttributeError: 'NoneType' object has no attribute 'read'"


# ------------------------------------------------------------------------------------------------- divergence


def test_a_nan_loss_fails_the_job_before_it_reaches_an_event(harness: Harness, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, FakeStrategy(losses=(2.0, float("nan"))))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint))
    assert failed.type == "training.failed"
    assert failed.data.reason == "training diverged: loss became NaN at step 2"
    assert [e.data.step for e in harness.published if e.type == "training.progress"] == [1]


def test_nan_weights_fail_the_job(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nan_adapter = save_adapter({"lora_A": torch.ones(2, 2), "lora_B": torch.tensor([[float("nan"), 0.0]]),
                                "lora_C": torch.tensor([float("inf")])})
    use_strategy(monkeypatch, FakeStrategy(save=nan_adapter))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint))
    assert failed.type == "training.failed"
    assert failed.data.reason == "training diverged: 2 of 3 adapter tensors are NaN/inf"


def test_a_full_model_with_an_inf_weight_is_diverged(tmp_path: Path) -> None:
    save_file({"w": torch.tensor([1.0, -math.inf]), "b": torch.zeros(3), "ids": torch.tensor([1, 2])},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(TrainingDiverged, match=r"^training diverged: 1 of 2 model tensors are NaN/inf$"):
        check_weights_finite(tmp_path)


def test_non_finite_kl_diverges_and_non_finite_extras_are_left_out(tmp_path: Path) -> None:
    method = MethodSpec(kind="sft")
    job = TrainingJob(job_id="job_1", base=BaseModelInfo(name="tiny", path=tmp_path, licence="MIT", sha256="0" * 64),
                      method=method, params=validate_hyperparameters({"max_steps": 4}, method), seed=0,
                      dataset=load_dataset(write_jsonl(tmp_path / "d.jsonl", chat_records(4, 1))),
                      workdir=tmp_path / "job_1")
    hooks = Recorder()
    run = TrainingRun(job, hooks)
    run.begin(0)
    run.logged(1, 1.0, 10, learning_rate=float("nan"), reward=float("inf"), kl=0.1)
    [progress] = hooks.progress_events
    assert progress.reward is None and progress.learning_rate is None and progress.kl == 0.1
    with pytest.raises(TrainingDiverged, match="KL became inf at step 2"):
        run.logged(2, 1.0, 20, learning_rate=1e-3, kl=float("inf"))
    with pytest.raises(TrainingDiverged, match="loss became -inf at step 3"):
        run.logged(3, float("-inf"), 30, learning_rate=1e-3)
    assert run.history == [(1, 1.0)] and len(hooks.progress_events) == 1


def test_the_trainer_logs_nan_losses_as_nan(tmp_path: Path) -> None:
    """HF's logging_nan_inf_filter would log a NaN step's loss as the mean of the finite ones."""
    method = MethodSpec(kind="sft")
    job = TrainingJob(job_id="j", base=BaseModelInfo(name="tiny", path=tmp_path, licence="MIT", sha256="0" * 64),
                      method=method, params=validate_hyperparameters({"max_steps": 2}, method), seed=0,
                      dataset=load_dataset(write_jsonl(tmp_path / "d.jsonl", chat_records(4, 1))), workdir=tmp_path)
    assert common_args(job, tmp_path, 2)["logging_nan_inf_filter"] is False


def forced(job: TrainingJob, **values: Any) -> TrainingJob:
    """`job` with hyperparameters intake now refuses, set past validation to reach the engine."""
    return dataclasses.replace(job, params=job.params.model_copy(update=values))


@pytest.mark.slow
def test_a_lora_run_that_diverges_to_nan_fails(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    """The tester's reproduction: lora_alpha 1e308 made every adapter weight NaN while HF logged a loss of 0.0.
    Intake now bounds lora_alpha, so the value is forced past validation to reach the engine."""
    job = forced(make_job(tmp_path, tiny_base, chat_records(12, 1), MethodSpec(kind="sft"),
                          {"max_steps": 3, "logging_steps": 1, "save_steps": 1000, "batch_size": 2}, "job_nan", 3),
                 lora_alpha=1e308)
    hooks = Recorder()
    with pytest.raises(TrainingDiverged, match=r"^training diverged: loss became NaN at step 1$"):
        run_training(job, hooks)
    assert all(math.isfinite(p.loss or 0.0) for p in hooks.progress_events)
    assert not (job.workdir / "final").exists()


# ---------------------------------------------------------------------------------------- metrics on the wire


def test_non_finite_metrics_are_left_out_of_training_completed(harness: Harness, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, FakeStrategy(metrics={"final_loss": float("nan"), "first_loss": float("inf"),
                                                    "steps": 1.0, "records": 15.0}))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [completed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint))
    assert completed.type == "training.completed"
    assert completed.data.metrics == {"steps": 1.0, "records": 15.0}
    assert Envelope.from_wire(completed.to_wire()).data.metrics == {"steps": 1.0, "records": 15.0}
    assert finite_metrics({"a": 1.0, "b": -math.inf, "c": math.nan}) == {"a": 1.0}


def test_an_infinite_epsilon_never_completes(harness: Harness, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, FakeStrategy(epsilon=math.inf))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint))
    assert failed.type == "training.failed" and "no meaningful privacy guarantee" in failed.data.reason


# ------------------------------------------------------------------------------------------ DP guarantee


def test_the_epsilon_cap_is_the_one_intake_applies_to_dp_target_epsilon() -> None:
    cap = dp_sgd.epsilon_cap()
    HyperParameters(dp_target_epsilon=cap)
    with pytest.raises(ValueError):
        HyperParameters(dp_target_epsilon=cap * 1.001)
    dp_sgd.check_guarantee(cap, 1.0, 1e-5, 10)
    for epsilon in (cap * 1.001, 1_100_087.0, math.inf):
        with pytest.raises(PrivacyGuaranteeVoid, match="too small for any meaningful privacy guarantee"):
            dp_sgd.check_guarantee(epsilon, 1e-3, 1e-5, 10)


def test_an_accountant_that_cannot_say_means_an_unbounded_epsilon() -> None:
    class Broken:
        def get_epsilon(self, delta: float) -> float:
            raise ZeroDivisionError("float division by zero")

    class Nan:
        def get_epsilon(self, delta: float) -> float:
            return math.nan

    assert dp_sgd.spent_epsilon(Broken(), 1e-5) == math.inf
    assert dp_sgd.spent_epsilon(Nan(), 1e-5) == math.inf


@pytest.mark.slow
def test_a_dp_noise_too_small_for_a_guarantee_is_refused_before_training(tmp_path: Path,
                                                                        tiny_base: BaseModelInfo) -> None:
    """The tester's 1e-3 (epsilon 1,100,087): intake now bounds the multiplier, so it is forced past validation."""
    job = forced(make_job(tmp_path, tiny_base, chat_records(12, 1),
                          MethodSpec(kind="sft", adapter="lora", differential_privacy=True),
                          {"max_steps": 2, "batch_size": 4, "dp_noise_multiplier": 1.0}, "job_dp", 3),
                 dp_noise_multiplier=1e-3)
    hooks = Recorder()
    with pytest.raises(PrivacyGuaranteeVoid, match=r"noise multiplier 0\.001 is too small"):
        run_training(job, hooks)
    assert hooks.progress_events == []


@pytest.mark.slow
def test_an_accountant_failing_after_dp_training_fails_the_job(harness: Harness, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The tester's ZeroDivisionError from Opacus' accountant after training: training.failed, not a retry loop."""
    from opacus.accountants.rdp import RDPAccountant

    original = RDPAccountant.get_epsilon
    calls: list[int] = []

    def fails_after_training(self: Any, delta: float, **kwargs: Any) -> float:
        calls.append(1)
        if len(calls) > 1:  # the first call is the plan, before training
            raise ZeroDivisionError("float division by zero")
        return original(self, delta, **kwargs)

    monkeypatch.setattr(RDPAccountant, "get_epsilon", fails_after_training)
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    job_id = new_job_id()
    [failed] = harness.deliver(harness.request(
        job_id, dataset, fingerprint, method={"kind": "sft", "adapter": "lora", "differential_privacy": True},
        hyperparameters={"max_steps": 2, "batch_size": 4, "logging_steps": 1, "save_steps": 1000,
                         "max_seq_length": 64, "dp_noise_multiplier": 1.0}))
    assert failed.type == "training.failed"
    assert "too small for any meaningful privacy guarantee" in failed.data.reason
    assert "epsilon after 2 steps is unbounded" in failed.data.reason
    assert harness.published[0].type == "training.started"
    [row] = outcome_rows(harness)
    assert (row.job_id, row.outcome) == (job_id, "failed")


def test_an_empty_poisson_batch_is_a_noise_only_step_the_accountant_charges() -> None:
    """The DP loop skipped empty batches: the accountant was a step short (the reported epsilon lower than the
    one spent) and whether the weights moved told whether any record was drawn."""
    import warnings

    import torch
    from opacus import PrivacyEngine

    from services.trainer.engine.dp_sgd import _noise_only_step

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 2, (8,)))
    engine = PrivacyEngine(accountant="rdp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus' notes on secure RNG and the loader it replaces
        model, optimizer, _ = engine.make_private(
            module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            data_loader=torch.utils.data.DataLoader(data, batch_size=2), noise_multiplier=1.0, max_grad_norm=1.0,
            poisson_sampling=True)
    before = [p.detach().clone() for p in model.parameters()]
    _noise_only_step(optimizer)
    _noise_only_step(optimizer)
    assert all(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters(), strict=True))
    assert engine.accountant.history == [(1.0, 0.25, 2)]
