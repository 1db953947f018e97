"""The model runtime: SFT / CPT (trl SFTTrainer) and DPO (trl DPOTrainer), LoRA or full, resumable from the
last complete checkpoint. DP-SGD runs go through adapters/dp.py. Runs in a worker thread; everything it
reports leaves through the TrainingHooks it is given."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.trainer.adapters.base_models import BaseModelInfo
from services.trainer.adapters.data import LoadedDataset, preference_rows, tokenise
from services.trainer.domain.progress import ThroughputMeter, TrainingCancelledError
from shared.events.payloads import MethodSpec, TrainingProgress
from shared.training.hyperparameters import HyperParameters

COMPLETE_MARKER = "tunegate_checkpoint.json"
FINAL_DIR = "final"


class TrainingHooks(Protocol):
    def started(self, resumed_from_step: int, total_steps: int) -> None: ...
    def progress(self, progress: TrainingProgress) -> None: ...
    def before_checkpoint(self, step: int) -> None: ...  # raises LeaseLost when this worker lost the job
    def checkpointed(self, step: int, directory: Path) -> None: ...
    def cancel_requested(self) -> bool: ...


class NullHooks:
    """Hooks that report nothing: plain library use, benchmarks."""

    def started(self, resumed_from_step: int, total_steps: int) -> None:
        return None

    def progress(self, progress: TrainingProgress) -> None:
        return None

    def before_checkpoint(self, step: int) -> None:
        return None

    def checkpointed(self, step: int, directory: Path) -> None:
        return None

    def cancel_requested(self) -> bool:
        return False


@dataclass
class TrainingJob:
    job_id: str
    base: BaseModelInfo
    method: MethodSpec
    params: HyperParameters
    seed: int
    dataset: LoadedDataset
    workdir: Path


@dataclass
class TrainingOutcome:
    model_dir: Path
    metrics: dict[str, float]
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    resumed_from_step: int = 0
    epsilon: float | None = None
    delta: float | None = None


def configure_offline() -> None:
    """No hub is reachable; fail fast instead of waiting on network timeouts."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_DISABLED", "true")


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """Newest checkpoint whose save finished (we write the marker after the trainer's save returns); a
    half-written one from a killed worker is removed so it cannot be picked up later."""
    if not run_dir.exists():
        return None
    best: tuple[int, Path] | None = None
    for path in run_dir.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if not suffix.isdigit():
            continue
        if not (path / COMPLETE_MARKER).exists():
            shutil.rmtree(path, ignore_errors=True)
            continue
        if best is None or int(suffix) > best[0]:
            best = (int(suffix), path)
    return best[1] if best else None


def mark_checkpoint_complete(directory: Path, step: int) -> None:
    (directory / COMPLETE_MARKER).write_text(json.dumps({"step": step}))


def load_model(base: BaseModelInfo, seed: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)


def load_tokenizer(base: BaseModelInfo) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def lora_config(params: HyperParameters) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        target_modules=list(params.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def apply_lora(model: Any, params: HyperParameters, seed: int) -> Any:
    import torch
    from peft import get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = sorted(set(params.lora_target_modules) - present)
    if missing:
        raise ValueError(f"hyperparameters.lora_target_modules: {', '.join(missing)} not found in the base "
                         f"model (its modules include {', '.join(sorted(present & {'q_proj', 'v_proj'}))})")
    torch.manual_seed(seed)  # LoRA A matrices are random: seed them so reruns match bit for bit
    return get_peft_model(model, lora_config(params))


def normalise_saved_model(directory: Path, base_name: str) -> None:
    """Strip what would differ between identical runs (local paths, generated cards). training_args.bin
    pickles the output path; the hyperparameters travel in training.completed instead."""
    (directory / "README.md").unlink(missing_ok=True)
    if not directory.name.startswith("checkpoint-"):
        (directory / "training_args.bin").unlink(missing_ok=True)
    adapter_config = directory / "adapter_config.json"
    if adapter_config.exists():
        data = json.loads(adapter_config.read_text())
        data["base_model_name_or_path"] = base_name
        adapter_config.write_text(json.dumps(data, indent=2, sort_keys=True))


def common_args(job: TrainingJob, run_dir: Path, total_steps: int) -> dict[str, Any]:
    p = job.params
    return {
        "output_dir": str(run_dir),
        "max_steps": total_steps,
        "learning_rate": p.learning_rate,
        "per_device_train_batch_size": p.batch_size,
        "gradient_accumulation_steps": p.gradient_accumulation_steps,
        "lr_scheduler_type": p.lr_scheduler,
        "warmup_steps": p.warmup_steps,
        "weight_decay": p.weight_decay,
        "max_grad_norm": p.max_grad_norm,
        "logging_steps": p.logging_steps,
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
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "include_num_input_tokens_seen": "non_padding",
        "max_length": p.max_seq_length,
    }


def make_callback(job: TrainingJob, hooks: TrainingHooks, total_steps: int,
                  history: list[tuple[int, float]], extra_metrics: dict[str, float]) -> Any:
    from transformers import TrainerCallback

    class TunegateCallback(TrainerCallback):
        """Bridges the trainer loop to tunegate: progress, cancel checks, lease checks, checkpoint records."""

        def __init__(self) -> None:
            self.meter: ThroughputMeter | None = None
            self.cancelled_at: int | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.meter = ThroughputMeter(total_steps, time.monotonic(), state.global_step,
                                         state.num_input_tokens_seen or 0)
            hooks.started(state.global_step, total_steps)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if hooks.cancel_requested():
                self.cancelled_at = state.global_step
                control.should_training_stop = True
                control.should_save = False
                return
            if control.should_save:
                hooks.before_checkpoint(state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            if not logs or "loss" not in logs or self.meter is None:
                return
            history.append((state.global_step, float(logs["loss"])))
            for key in ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"):
                if key in logs:
                    extra_metrics[key.replace("/", "_")] = float(logs[key])
            tokens_per_s, eta = self.meter.sample(time.monotonic(), state.global_step,
                                                  state.num_input_tokens_seen or 0)
            hooks.progress(TrainingProgress(
                job_id=job.job_id, step=state.global_step, total_steps=total_steps, loss=float(logs["loss"]),
                learning_rate=float(logs["learning_rate"]) if "learning_rate" in logs else None,
                tokens_per_s=tokens_per_s, eta_s=eta, epoch=float(state.epoch or 0.0),
            ))

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            directory = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            normalise_saved_model(directory, job.base.name)
            mark_checkpoint_complete(directory, state.global_step)
            hooks.checkpointed(state.global_step, directory)

    return TunegateCallback()


def build_trainer(job: TrainingJob, run_dir: Path, total_steps: int,
                  callbacks: list[Any] | None = None) -> tuple[Any, Any]:
    """The trl trainer for this job (also used, with no callbacks, by the overhead benchmark)."""
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


def run_training(job: TrainingJob, hooks: TrainingHooks) -> TrainingOutcome:
    """Train (or resume) the job; raise TrainingCancelledError on cancel, LeaseLost if the job moved."""
    configure_offline()
    if job.method.differential_privacy:
        from services.trainer.adapters.dp import run_dp_training

        return run_dp_training(job, hooks)
    total_steps = job.params.total_steps(len(job.dataset.records))
    run_dir = job.workdir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    history: list[tuple[int, float]] = []
    extra: dict[str, float] = {}
    callback = make_callback(job, hooks, total_steps, history, extra)
    trainer, tokenizer = build_trainer(job, run_dir, total_steps, [callback])
    quiet(trainer)
    resume = last_complete_checkpoint(run_dir)
    resumed_from = int(resume.name.split("-")[1]) if resume else 0
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if callback.cancelled_at is not None:
        raise TrainingCancelledError(callback.cancelled_at)
    final_dir = job.workdir / FINAL_DIR
    if final_dir.exists():
        shutil.rmtree(final_dir)
    trainer.save_model(str(final_dir))
    tokenizer.save_pretrained(str(final_dir))
    normalise_saved_model(final_dir, job.base.name)
    elapsed = time.monotonic() - started
    tokens = float(trainer.state.num_input_tokens_seen or 0)
    metrics = {
        "train_loss": float(result.training_loss),
        "final_loss": history[-1][1] if history else float(result.training_loss),
        "first_loss": history[0][1] if history else float(result.training_loss),
        "steps": float(trainer.state.global_step),
        "train_seconds": elapsed,
        "tokens_seen": tokens,
        "records": float(len(job.dataset.records)),
        **extra,
    }
    return TrainingOutcome(model_dir=final_dir, metrics=metrics, loss_history=history,
                           resumed_from_step=resumed_from)
