"""Plain training: SFT / CPT (trl SFTTrainer) and DPO (trl DPOTrainer), LoRA or full, resumable from the
last complete checkpoint. The trainer's own loop runs; a callback bridges it to the TrainingRun."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.trainer.domain.progress import TrainingCancelledError
from services.trainer.engine.data import preference_rows, tokenise
from services.trainer.engine.models import apply_lora, load_model, load_tokenizer
from services.trainer.engine.run import TrainedModel, TrainingJob, TrainingRun, last_complete_checkpoint

REWARD_METRICS = ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")
# Told each logged step's metrics; True stops training after this step (the RLHF KL bound uses it).
MetricsWatcher = Callable[[int, dict[str, float]], bool]
TrainerBuilder = Callable[[TrainingJob, Path, int, list[Any]], tuple[Any, Any]]


def common_args(job: TrainingJob, run_dir: Path, total_steps: int) -> dict[str, Any]:
    p = job.params
    return {
        "output_dir": str(run_dir),
        "max_steps": total_steps,
        "learning_rate": p.learning_rate,
        # Data-parallel ranks split the batch: batch_size/workers each, so the effective batch (summed over
        # the ranks, times gradient accumulation) is the single-process one and the loss curves match.
        "per_device_train_batch_size": p.batch_size // p.workers,
        "gradient_accumulation_steps": p.gradient_accumulation_steps,
        "lr_scheduler_type": p.lr_scheduler,
        "warmup_steps": p.warmup_steps,
        "weight_decay": p.weight_decay,
        "max_grad_norm": p.max_grad_norm,
        "logging_steps": p.logging_steps,
        # On by default, the filter logs a NaN/inf step's loss as the mean of the finite ones: a run diverged to
        # NaN then reported losses of 0.0 and completed. Off, the NaN reaches TrainingRun.logged, which fails it.
        "logging_nan_inf_filter": False,
        "save_steps": p.save_steps,
        "save_strategy": "steps",
        "save_total_limit": 2,
        "seed": job.seed,
        "data_seed": job.seed,
        "report_to": [],
        "disable_tqdm": True,
        # trl enables bf16 and gradient checkpointing by default; on CPU both make training ~7x slower.
        "bf16": False,
        "gradient_checkpointing": False,
        "use_cpu": job.device == "cpu",
        "dataloader_num_workers": 0,
        # Under DDP (workers > 1) every trainable weight gets a gradient each step: skip the unused-parameter scan.
        "ddp_find_unused_parameters": False,
        "include_num_input_tokens_seen": "non_padding",
        "max_length": p.max_seq_length,
    }


def make_callback(run: TrainingRun, extra_metrics: dict[str, float], metric_keys: tuple[str, ...] = REWARD_METRICS,
                  watch: MetricsWatcher | None = None) -> Any:
    from transformers import TrainerCallback

    class TunegateCallback(TrainerCallback):
        """Bridges the trainer loop to the run: progress, cancel checks, lease checks, checkpoint records."""

        def __init__(self) -> None:
            self.cancelled_at: int | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            run.begin(state.global_step, state.num_input_tokens_seen or 0)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if run.cancel_requested():
                self.cancelled_at = state.global_step
                control.should_training_stop = True
                control.should_save = False
                return
            if control.should_save:
                run.before_checkpoint(state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            if not logs or "loss" not in logs:
                return
            for key in metric_keys:
                if key in logs:
                    extra_metrics[key.replace("/", "_")] = float(logs[key])
            run.logged(state.global_step, float(logs["loss"]), state.num_input_tokens_seen or 0,
                       learning_rate=float(logs["learning_rate"]) if "learning_rate" in logs else None,
                       epoch=float(state.epoch or 0.0),
                       reward=float(logs["reward"]) if "reward" in logs else None,
                       kl=float(logs["kl"]) if "kl" in logs else None)
            if watch is not None and watch(state.global_step, logs):
                control.should_training_stop = True

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            run.checkpoint_saved(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)

    return TunegateCallback()


def build_trainer(job: TrainingJob, run_dir: Path, total_steps: int,
                  callbacks: list[Any] | None = None) -> tuple[Any, Any]:
    """The trl trainer for this job."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(job.base)
    model = load_model(job.base, job.seed)
    if job.method.adapter == "lora":
        model = apply_lora(model, job.params, job.seed)
    args = common_args(job, run_dir, total_steps)
    if job.method.kind == "dpo":
        ref_model = None if job.method.adapter == "lora" else load_model(job.base, job.seed)
        dataset = Dataset.from_list(preference_rows(job.dataset.records))
        trainer = DPOTrainer(
            model=model, ref_model=ref_model, args=DPOConfig(beta=job.params.beta, **args),
            train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks,
        )
        return trainer, tokenizer
    tokenised = tokenise(tokenizer, job.dataset.kind, job.dataset.records, job.params.max_seq_length)
    dataset = Dataset.from_list(tokenised.rows)
    trainer = SFTTrainer(
        model=model, args=SFTConfig(completion_only_loss=True, packing=False, **args),
        train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks,
    )
    return trainer, tokenizer


def quiet(trainer: Any) -> Any:
    """The worker reports through events; the console printer would only duplicate them into logs."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


class PlainTraining:
    """The TRL trainers' own loop, resumed from the newest complete checkpoint. Other strategies reuse it with
    their own trainer builder, the metrics they keep and a watcher that may stop the run."""

    def __init__(self, builder: TrainerBuilder = build_trainer, metric_keys: tuple[str, ...] = REWARD_METRICS,
                 watch: MetricsWatcher | None = None) -> None:
        self.builder, self.metric_keys, self.watch = builder, metric_keys, watch
        self.trainer: Any = None

    def train(self, run: TrainingRun) -> TrainedModel:
        job = run.job
        extra: dict[str, float] = {}
        callback = make_callback(run, extra, self.metric_keys, self.watch)
        trainer, tokenizer = self.builder(job, run.run_dir, run.total_steps, [callback])
        self.trainer = trainer  # the run's trainer, for a subclass's save (RLHF drops its reference adapter)
        quiet(trainer)
        resume = last_complete_checkpoint(run.run_dir)
        resumed_from = int(resume.name.split("-")[1]) if resume else 0
        started = time.monotonic()
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        elapsed = time.monotonic() - started
        if callback.cancelled_at is not None:
            raise TrainingCancelledError(callback.cancelled_at)
        history = run.history
        metrics = {
            "train_loss": float(result.training_loss),
            "final_loss": history[-1][1] if history else float(result.training_loss),
            "first_loss": history[0][1] if history else float(result.training_loss),
            "steps": float(trainer.state.global_step),
            "train_seconds": elapsed,
            "tokens_seen": float(trainer.state.num_input_tokens_seen or 0),
            "records": float(len(job.dataset.records)),
            **extra,
        }

        def save(directory: Path) -> None:
            trainer.save_model(str(directory))
            tokenizer.save_pretrained(str(directory))

        return TrainedModel(save=save, metrics=metrics, resumed_from_step=resumed_from)
